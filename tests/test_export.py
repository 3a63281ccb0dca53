import pandas as pd

from forecaster.export import neutralise_cell, write_csv


def test_csv_is_utf8_with_bom_and_chinese_survives(tmp_path):
    path = write_csv(pd.DataFrame({"community_name": ["北京·翠湖花园"], "y": [1.5]}), tmp_path / "out" / "a.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "北京·翠湖花园" in raw.decode("utf-8-sig")


def test_formula_cells_are_neutralised_but_numbers_are_not(tmp_path):
    frame = pd.DataFrame({"name": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "ok"], "y": [-1.0, 2.0, -3.0, 4.0, 5.0]})
    path = write_csv(frame, tmp_path / "a.csv")
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert back["name"].tolist() == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "ok"]
    assert back["y"].tolist() == [-1.0, 2.0, -3.0, 4.0, 5.0]
    assert neutralise_cell(-5) == -5


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old", encoding="utf-8")

    class Boom:
        def __str__(self):
            raise RuntimeError("disk full")

    try:
        write_csv(pd.DataFrame({"x": [Boom()]}), path, neutralise=False)
    except RuntimeError:
        pass
    assert path.read_text(encoding="utf-8") == "old"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_outputs_are_readable_by_others_like_a_plain_write(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = write_csv(pd.DataFrame({"x": [1]}), tmp_path / "a.csv")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o044 == 0o044, oct(mode)  # group and others may read (planners on a shared drive)
