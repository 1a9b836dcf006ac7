"""Redaction of personal data and SQL literals."""

from __future__ import annotations

import time

import pytest

from tools.redact import luhn_valid, redact_evidence_rows, redact_sql, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+ops@example.co.uk now", "mail <email> now"),
        ("from a.b@corp.example.com: hi", "from <email>: hi"),
        ("card 4111 1111 1111 1111 used", "card <card> used"),
        ("card 4111-1111-1111-1111", "card <card>"),
        ("5500005555555559", "<card>"),
        ("amex 378282246310005.", "amex <card>."),
        ("ssn 123-45-6789 on file", "ssn <id> on file"),
        ("NI AB 12 34 56 C and AB123456C", "NI <id> and <id>"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN <id>"),
        ("IBAN DE89370400440532013000", "IBAN <id>"),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",  # 16 digits, wrong check digit
        "5500005555555550",
        "query_hash 2031351419447916692",  # Luhn-valid 19 digits, but no card scheme issues 20...
        "OrderId=99812 at 2026-03-04T10:12:31Z, session 57 blocked 88 for 61234 ms",
        "ssn-like 000-12-3456 and 666-12-3456",
        "IBAN GB82 WEST 1234 5698 7654 33",  # mod-97 check fails
        "transaction 0x00001f22 (session 311)",
        "QQ123456C is not a valid NINO prefix",
    ],
)
def test_lookalikes_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert luhn_valid("79927398713")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "UPDATE dbo.Orders SET Status = 'PAID' WHERE OrderId = @id",
            "UPDATE dbo.Orders SET Status = ? WHERE OrderId = @id",
        ),
        (
            "SELECT * FROM Table1 t1 WHERE t1.col2 = 42 AND name = N'O''Brien' AND x IN (1, 2.5, -3e4)",
            "SELECT * FROM Table1 t1 WHERE t1.col2 = ? AND name = ? AND x IN (?, ?, -?)",
        ),
        (
            "SELECT id FROM orders WHERE account_id = $1 AND status = :status AND c = ? AND d::int > 10",
            "SELECT id FROM orders WHERE account_id = $1 AND status = :status AND c = ? AND d::int > ?",
        ),
        (
            "EXEC dbo.ReserveStock @sku=@p1, @qty=@p2 /* query_hash 0x3A9F00C1D2E3F405 */",
            "EXEC dbo.ReserveStock @sku=@p1, @qty=@p2 /* query_hash 0x3A9F00C1D2E3F405 */",
        ),
        (
            'SELECT [Order Details].[Unit2], "Col 3" FROM #tmp1 '
            "WHERE x = 'it''s -- not a comment' AND y = 0xFF",
            'SELECT [Order Details].[Unit2], "Col 3" FROM #tmp1 WHERE x = ? AND y = ?',
        ),
        ("SELECT 1 -- ticket 42 by ops@example.com", "SELECT ? -- ?"),
        ("select $$body 5$$, $fn$ a $$ b $fn$, 8", "select ?, ?, ?"),
        ("WHERE a = 'unterminated", "WHERE a = ?"),
        ("SELECT @@ROWCOUNT, col_1a FROM s2.t3", "SELECT @@ROWCOUNT, col_1a FROM s2.t3"),
    ],
)
def test_sql_literals_become_placeholders(sql: str, expected: str) -> None:
    assert redact_sql(sql) == expected


def test_sql_literal_with_card_and_email_leaves_nothing() -> None:
    out = redact_sql("INSERT INTO pay VALUES ('a@b.com', '4111 1111 1111 1111', 12.5)")
    assert out == "INSERT INTO pay VALUES (?, ?, ?)"


def test_evidence_rows() -> None:
    rows = [
        {
            "session_id": 57,
            "sql_text": "UPDATE dbo.Orders SET Status = 'RECONCILED' WHERE OrderDate < '2026-01-01'",
            "login_name": "jane@example.com",
            "query_hash": "4111111111111111",
            "extra": {"note": "card 4111 1111 1111 1111"},
        }
    ]
    out = redact_evidence_rows(rows)
    assert out == [
        {
            "session_id": 57,
            "sql_text": "UPDATE dbo.Orders SET Status = ? WHERE OrderDate < ?",
            "login_name": "<email>",
            "query_hash": "4111111111111111",
            "extra": {"note": "card <card>"},
        }
    ]
    assert rows[0]["login_name"] == "jane@example.com"  # the input is not modified


def test_fast_enough() -> None:
    sql = "SELECT a, b1, c FROM dbo.T1 WHERE id = @id AND name = N'x''y' AND n IN (1, 2, 3) " * 20
    started = time.perf_counter()
    for _ in range(500):
        redact_sql(sql)
    assert time.perf_counter() - started < 2.0
