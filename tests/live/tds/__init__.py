"""A TDS test server (pysqlbridge) answering the SQL Server DMVs the mssql query pack reads, and the
way to Microsoft's ODBC Driver 18 in the mssql-python-odbc wheel."""
