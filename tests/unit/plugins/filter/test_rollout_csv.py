"""Unit tests for rollout_csv_check, the controller-side check of a wave's CSV files."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_csv import check_wave_csvs

HEADER = "username,email,first_name,last_name,moa\n"


def moa(code, users=10, csv=None):
    return {"code": code, "name": f"Office {code}", "wave": 1, "expected_users": users, "csv": csv or f"{code}.csv"}


def write(directory, name, text):
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_files_return_users(tmp_path):
    write(tmp_path, "ocm.csv", HEADER + "ocm.aisah,aisah@ocm.example.gov.ph,Aisah,Mamalangkap,ocm\n")
    write(tmp_path, "moh.csv", HEADER + "moh.zkiram,zkiram@moh.example.gov.ph,Zainal,Kiram,moh\n")
    result = check_wave_csvs([moa("ocm"), moa("moh")], str(tmp_path))
    assert result["problems"] == []
    assert [entry["code"] for entry in result["files"]] == ["ocm", "moh"]
    assert result["files"][0]["usernames"] == ["ocm.aisah"]
    assert result["files"][0]["emails"] == ["aisah@ocm.example.gov.ph"]
    assert result["files"][0]["rows"] == 1
    assert result["files"][0]["path"] == str(tmp_path / "ocm.csv")
    assert result["files"][0]["expected_users"] == 10


def test_bad_rows_reported_with_lines(tmp_path):
    write(
        tmp_path,
        "ocm.csv",
        HEADER
        + "ocm.good,good@ocm.example.gov.ph,Good,Row,ocm\n"
        + "ocm bad,bad-at-example.gov.ph,Bad,Row,ocm\n"
        + ",empty@ocm.example.gov.ph,No,Name,ocm\n"
        + "ocm.other,other@ocm.example.gov.ph,Other,Moa,moh\n",
    )
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert problems == [
        "ocm.csv: line 3: username 'ocm bad' may contain only letters, digits and @ . + - _",
        "ocm.csv: line 3: email 'bad-at-example.gov.ph' is not a valid email address",
        "ocm.csv: line 4: username is empty",
        "ocm.csv: line 5: moa 'moh' differs from the MOA of this file, 'ocm'",
    ]


def test_every_file_checked_before_stopping(tmp_path):
    write(tmp_path, "ocm.csv", HEADER + "ocm.a,not-an-email,A,B,ocm\n")
    write(tmp_path, "moh.csv", HEADER + "moh.a,also-not,A,B,moh\n")
    problems = check_wave_csvs([moa("ocm"), moa("moh")], str(tmp_path))["problems"]
    assert [problem.split(":")[0] for problem in problems] == ["ocm.csv", "moh.csv"]


def test_duplicate_across_files_reported(tmp_path):
    write(tmp_path, "ocm.csv", HEADER + "shared.user,shared@example.gov.ph,A,B,ocm\n")
    write(
        tmp_path, "moh.csv", HEADER + "moh.a,moh.a@example.gov.ph,A,B,moh\nShared.User,SHARED@example.gov.ph,C,D,moh\n"
    )
    problems = check_wave_csvs([moa("ocm"), moa("moh")], str(tmp_path))["problems"]
    assert problems == [
        "moh.csv: line 3: username 'Shared.User' repeats ocm.csv line 2",
        "moh.csv: line 3: email 'SHARED@example.gov.ph' repeats ocm.csv line 2",
    ]


def test_duplicate_within_file_reported(tmp_path):
    write(tmp_path, "ocm.csv", HEADER + "ocm.a,a@example.gov.ph,A,B,ocm\nocm.a,b@example.gov.ph,A,B,ocm\n")
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert problems == ["ocm.csv: line 3: username 'ocm.a' repeats ocm.csv line 2"]


def test_missing_file_reported(tmp_path):
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert problems == [
        f"ocm.csv: file not found at {tmp_path / 'ocm.csv'} (MOA ocm); create it or fix csv in rollout_moas"
    ]


def test_missing_columns_reported(tmp_path):
    write(tmp_path, "ocm.csv", "username,email\nocm.a,a@example.gov.ph\n")
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert problems == [
        "ocm.csv: line 1: missing column(s) first_name, last_name, moa;"
        " expected username, email, first_name, last_name, moa"
    ]


def test_header_only_file_reported(tmp_path):
    write(tmp_path, "ocm.csv", HEADER)
    assert check_wave_csvs([moa("ocm")], str(tmp_path))["problems"] == ["ocm.csv: no user rows after the header"]


def test_non_utf8_file_reported(tmp_path):
    (tmp_path / "ocm.csv").write_bytes(HEADER.encode() + b"ocm.a,a@example.gov.ph,Ni\xf1o,B,ocm\n")
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert len(problems) == 1
    assert problems[0].startswith("ocm.csv: cannot be read as a UTF-8 text file")


def test_byte_order_mark_accepted(tmp_path):
    (tmp_path / "ocm.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + "ocm.a,a@example.gov.ph,Niño,B,ocm\n").encode())
    assert check_wave_csvs([moa("ocm")], str(tmp_path))["problems"] == []


def test_quoted_multiline_field_line_number(tmp_path):
    """A row that spans lines is reported at its last line, as the import command does."""
    write(tmp_path, "ocm.csv", HEADER + 'ocm.a,a@example.gov.ph,"Two\nLines",B,ocm\nocm.b,bad,A,B,ocm\n')
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert problems == ["ocm.csv: line 4: email 'bad' is not a valid email address"]


def test_more_rows_than_expected_users(tmp_path):
    write(tmp_path, "ocm.csv", HEADER + "ocm.a,a@example.gov.ph,A,B,ocm\nocm.b,b@example.gov.ph,A,B,ocm\n")
    problems = check_wave_csvs([moa("ocm", users=1)], str(tmp_path))["problems"]
    assert problems == [
        "ocm.csv: 2 user rows, but expected_users of ocm is 1; raise expected_users in rollout_moas"
        " so that the capacity check counts every account"
    ]


def test_long_names_reported(tmp_path):
    write(tmp_path, "ocm.csv", HEADER + f"ocm.a,a@example.gov.ph,{'x' * 151},B,ocm\n")
    problems = check_wave_csvs([moa("ocm")], str(tmp_path))["problems"]
    assert problems == ["ocm.csv: line 2: first_name is longer than 150 characters"]


def test_absolute_csv_path_used_as_is(tmp_path):
    path = write(tmp_path, "elsewhere.csv", HEADER + "ocm.a,a@example.gov.ph,A,B,ocm\n")
    result = check_wave_csvs([moa("ocm", csv=str(path))], "/nonexistent")
    assert result["problems"] == []
    assert result["files"][0]["path"] == str(path)


def test_file_inside_inventory_directory_rejected(tmp_path):
    inventory = tmp_path / "inventory"
    (inventory / "rollout").mkdir(parents=True)
    write(inventory / "rollout", "ocm.csv", HEADER + "ocm.a,a@example.gov.ph,A,B,ocm\n")
    result = check_wave_csvs([moa("ocm")], str(inventory / "rollout"), inventory_dirs=[str(inventory)])
    assert len(result["problems"]) == 1
    assert "is inside the inventory directory" in result["problems"][0]
    assert result["files"] == []


def test_other_columns_configurable(tmp_path):
    write(tmp_path, "ocm.csv", "login,mail,office\nocm.a,a@example.gov.ph,OCM\n")
    result = check_wave_csvs(
        [moa("OCM", csv="ocm.csv")],
        str(tmp_path),
        required_columns=["login", "mail"],
        username_column="login",
        email_column="mail",
        moa_column="office",
        name_columns=[],
    )
    assert result["problems"] == []
    assert result["files"][0]["usernames"] == ["ocm.a"]


def test_moa_column_check_can_be_skipped(tmp_path):
    write(tmp_path, "ocm.csv", "username,email\nocm.a,a@example.gov.ph\n")
    result = check_wave_csvs([moa("ocm")], str(tmp_path), required_columns=["username", "email"], moa_column="")
    assert result["problems"] == []


def test_bad_arguments_rejected(tmp_path):
    with pytest.raises(AnsibleFilterError, match="csv_dir must be the directory of the CSV files"):
        check_wave_csvs([moa("ocm")], "")
    with pytest.raises(AnsibleFilterError, match="required_columns must be a list of column names"):
        check_wave_csvs([moa("ocm")], str(tmp_path), required_columns="username")
