import pytest
from pydantic import BaseModel, ValidationError

from mqferry.config import REDACTED, Secret


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


def test_unreadable_file_secret(tmp_path):
    with pytest.raises(ValidationError, match="cannot read secret file"):
        Model(password=f"file://{tmp_path}/missing")


def test_plain_secret_is_redacted_in_dumps():
    m = Model(password="plain")
    assert m.model_dump_json() == '{"password":"******"}'
