"""The scrubber's checked detectors: card numbers (Luhn), IBANs (mod 97), detect-secrets' detectors and
its entropy limits; and what must stay (order numbers, dates, versions, paths, invalid look-alikes)."""

from __future__ import annotations

import pytest

from training.scrub import ScrubReport, scrub


def scrubbed(text: str, keep: set[str] = frozenset()) -> tuple[str, dict[str, int]]:
    report = ScrubReport()
    return scrub(text, keep, report), dict(report.counts)


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559",
                                  "378282246310005", "6011 0009 9013 9424"])
def test_card_numbers_that_pass_the_luhn_check_are_scrubbed(card):
    text, counts = scrubbed(f"Charge it to {card} please.")
    assert text == "Charge it to [CARD_NUMBER] please." and counts == {"CARD_NUMBER": 1}


def test_digit_runs_that_fail_the_luhn_check_stay_cards_free():
    text, counts = scrubbed("Ticket 4111 1111 1111 1112 was filed on 2025-03-04.")
    assert "CARD_NUMBER" not in counts and "4111 1111 1111 1112" in text


@pytest.mark.parametrize("account", ["DE89 3704 0044 0532 0130 00", "DE89370400440532013000",
                                     "GB82 WEST 1234 5698 7654 32", "FR14 2004 1010 0505 0001 3M02 606"])
def test_ibans_with_a_valid_checksum_are_scrubbed(account):
    text, counts = scrubbed(f"Wire it to {account} AND confirm.")
    assert text == "Wire it to [IBAN] AND confirm." and counts == {"IBAN": 1}


def test_iban_look_alikes_with_a_bad_checksum_stay():
    text, counts = scrubbed("Reference DE00 3704 0044 0532 0130 00 is not an account.")
    assert counts == {} and "DE00 3704" in text


@pytest.mark.parametrize("secret, kind", [
    ("Q7x9Lp2Vm4Rt8Kw3Zn6Hs1Jd5Fg0Yc", "HIGH_ENTROPY_SECRET"),
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "HIGH_ENTROPY_SECRET"),
    ("9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc", "HIGH_ENTROPY_SECRET"),
    ("sk_live_51HxYzAbCdEfGhIjKlMnOpQr", "STRIPE_ACCESS_KEY"),
    ("glpat-abcdefghij0123456789", "GITLAB_TOKEN"),
    ("SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "SENDGRID_API_KEY"),
])
def test_detect_secrets_detectors_and_entropy(secret, kind):
    text, counts = scrubbed(f"the key is {secret} for prod")
    assert secret not in text and counts.get(kind) == 1, (text, counts)


def test_basic_auth_urls_keep_everything_but_the_password():
    text, _ = scrubbed("Clone https://deploy:s3cr3tPassw0rd@git.acme.example/repo.git")
    assert text == "Clone https://deploy:[BASIC_AUTH_CREDENTIALS]@git.acme.example/repo.git"


def test_ordinary_technical_text_stays():
    text = ("GlobalProtect 6.2.1 since 2025-03-04 on 10.40.0.0/16, gateway 203.0.113.10; "
            "see /usr/share/doc/apache2-doc/manual/en/mod/mod_ssl.html and kbot_answer_first_token_seconds; "
            "GlobalProtectVersion621Release; budget 4,000 EUR.")
    assert scrubbed(text) == (text, {})


def test_a_published_number_in_keep_is_not_taken_for_a_card():
    published = "4111 1111 1111 1111"  # Luhn-valid, but it is in the documents the answer came from
    assert scrubbed(f"Call {published}", keep={published})[0] == f"Call {published}"
