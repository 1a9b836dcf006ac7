"""Real agents the live tests start on loopback: Net-SNMP's snmpd and a scripted pysnmp responder."""
