import pytest
from pydantic import BaseModel, ValidationError

from mqferry._config import REDACTED, Secret
from mqferry._config.secrets import FROM_API, clear_text_secrets


class Model(BaseModel):
    password: Secret


def test_env_secret_is_resolved_and_never_dumped(monkeypatch):
    monkeypatch.setenv("KAFKA_PASSWORD", "s3cr3t")
    m = Model(password="${KAFKA_PASSWORD}")
    assert m.password.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(m)
    assert m.model_dump(mode="json") == {"password": REDACTED}


def test_missing_env_secret_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ValidationError, match="environment variable NOPE_NOT_SET is not set"):
        Model(password="${NOPE_NOT_SET}")


def test_file_secret(tmp_path):
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    assert Model(password=f"file://{f}").password.get_secret_value() == "from-file"


def test_unreadable_file_secret_says_why_only_in_the_log(tmp_path, caplog):
    missing = f"{tmp_path}/missing"
    with pytest.raises(ValidationError, match="cannot read the secret file") as err:
        Model(password=f"file://{missing}")
    # The message may reach a client of the API: it must not tell whether the file exists.
    assert missing not in str(err.value)
    assert "No such file" not in str(err.value)
    assert f"cannot read secret file {missing}: No such file or directory" in caplog.text


@pytest.mark.parametrize("ref", ["${HOME}", "file:///etc/passwd", " file:///etc/passwd"])
def test_a_reference_from_the_api_is_refused_not_resolved(ref):
    with pytest.raises(ValidationError) as err:
        Model.model_validate({"password": ref}, context={FROM_API: True})
    [problem] = err.value.errors()
    assert problem["type"] == "secret_reference"
    assert problem["loc"] == ("password",)
    literal = Model.model_validate({"password": "p${x}"}, context={FROM_API: True})
    assert literal.password.get_secret_value() == "p${x}"


def test_clear_text_secrets_are_found_by_key_name():
    data = {"mqtt": {"password": "pw"}, "connectors": {"k": {"a": {
        "authentication": {"password": "${PW}"}, "ssl": {"password": "file:///x"},
        "hosts": [{"token": "t"}], "secret": ""}}}}
    assert list(clear_text_secrets(data)) == ["mqtt.password", "connectors.k.a.hosts[0].token"]


def test_plain_secret_is_redacted_in_dumps():
    m = Model(password="plain")
    assert m.model_dump_json() == '{"password":"******"}'
