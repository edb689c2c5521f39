import hashlib
import warnings

import pytest

from iatros.data.home import RemoteFile, download, fetch, locate
from iatros.errors import CorruptDataError, MissingDataError


def _spec(path, content: bytes, url=None):
    return RemoteFile("sub/file.bin", url=url, sha256=hashlib.sha256(content).hexdigest(),
                      homepage="https://example.org/dataset")


def test_missing_file_error_names_file_path_and_source(tmp_path):
    spec = _spec(tmp_path, b"x")
    with pytest.raises(MissingDataError) as e:
        locate(spec, tmp_path)
    message = str(e.value)
    assert "file.bin" in message and str(tmp_path / "sub" / "file.bin") in message
    assert "https://example.org/dataset" in message


def test_download_verifies_checksum_and_places_file(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload")
    spec = _spec(tmp_path, b"payload", url=source.as_uri())
    root = tmp_path / "root"
    path = download(spec, root)
    assert path.read_bytes() == b"payload"
    assert locate(spec, root) == path


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"tampered")
    spec = _spec(tmp_path, b"payload", url=source.as_uri())
    root = tmp_path / "root"
    with pytest.raises(CorruptDataError):
        download(spec, root)
    assert not (root / "sub" / "file.bin").exists()
    assert not list((root / "sub").glob("*.part"))


def test_unreachable_url_says_where_to_place_file(tmp_path):
    spec = _spec(tmp_path, b"x", url=(tmp_path / "absent.bin").as_uri())
    with pytest.raises(MissingDataError, match="place the file at"):
        fetch(spec, tmp_path / "root", allow_download=True)


def test_local_checksum_mismatch_warns_but_reads(tmp_path):
    spec = _spec(tmp_path, b"official")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.bin").write_bytes(b"local copy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert locate(spec, tmp_path).exists()
    assert any("checksum" in str(w.message) for w in caught)
    with pytest.raises(CorruptDataError):
        locate(spec, tmp_path, strict_checksum=True)


def test_unwritable_root_gets_clear_error(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data root should be")
    spec = _spec(tmp_path, b"payload", url=source.as_uri())
    with pytest.raises(MissingDataError, match="not writable"):
        download(spec, blocker)
