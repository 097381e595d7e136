"""The official list of units, names and slugs, and the skeleton `inventory init` writes."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
import yaml

from monitor.commands import inventory as inventory_cmd
from monitor.inventory import parse_inventory
from monitor.units import (
    UnknownProvinceError,
    ascii_slug,
    codename_slug,
    default_domain_suffix,
    is_dns_label,
    name_slug,
    normalise_name,
    official_index,
    official_units,
    provinces,
    skeleton,
)
from tests.test_inventory import FAKE, RESOLVER


def test_hcmc_units() -> None:
    units = official_units(79)
    assert len(units) == 168
    assert Counter(u.type for u in units) == {"phường": 113, "xã": 54, "đặc khu": 1}
    rach_dua = official_index(79)[26536]
    assert rach_dua.name == "Phường Rạch Dừa"
    assert rach_dua.official_codename == "phuong_rach_dua"
    assert rach_dua.codename == "phuong-rach-dua"
    assert all(u.province == 79 for u in units)
    assert [u.code for u in units] == sorted(u.code for u in units)


def test_nationwide() -> None:
    assert len(provinces()) == 34
    assert provinces()[79] == "Thành phố Hồ Chí Minh"
    units = official_units()
    assert len(units) == 3321
    assert {u.province for u in units} == set(provinces())
    assert sum(len(official_units(p)) for p in provinces()) == 3321
    for u in units:
        assert u.name == normalise_name(u.name)
        assert is_dns_label(u.codename), u


def test_codenames_unique_within_each_province() -> None:
    for p in provinces():
        codes = [u.codename for u in official_units(p)]
        assert len(codes) == len(set(codes)), p
    # two official units share 'xa_thanh_an': both get their code appended
    idx = official_index(79)
    assert (idx[25807].name, idx[25807].codename) == ("Xã Thanh An", "xa-thanh-an-25807")
    assert (idx[27676].name, idx[27676].codename) == ("Xã Thạnh An", "xa-thanh-an-27676")


def test_unknown_province() -> None:
    with pytest.raises(UnknownProvinceError) as info:
        official_units(99)
    assert "unknown province code 99; valid codes: 1 (Thành phố Hà Nội), 4 (Cao Bằng)" in str(info.value)


@pytest.mark.parametrize(
    ("fn", "text", "want"),
    [
        (normalise_name, "Phường  Rạch Dừa ", "Phường Rạch Dừa"),
        (normalise_name, "Phu\u031bo\u031b\u0300ng\tA", "Phường A"),  # NFD input
        (ascii_slug, "Đặc khu Côn Đảo", "dac-khu-con-dao"),
        (codename_slug, "phuong_vung_tau", "phuong-vung-tau"),
        (name_slug, "Phường  Vũng Tàu", "vung-tau"),
        (name_slug, "Đặc khu Côn Đảo", "con-dao"),
        (name_slug, "Xã Dầu Tiếng", "dau-tieng"),
    ],
)
def test_names_and_slugs(fn: object, text: str, want: str) -> None:
    assert fn(text) == want  # type: ignore[operator]


def test_default_domain_suffix() -> None:
    assert default_domain_suffix(79) == "hochiminhcity.gov.vn"
    assert default_domain_suffix(1) == "hanoi.gov.vn"
    assert default_domain_suffix(4) == "caobang.gov.vn"


def test_skeleton_79() -> None:
    text = skeleton(79)
    assert "carries no lineage" in text
    doc = yaml.safe_load(text)
    assert doc["province"] == 79
    assert doc["defaults"]["templates"]["portal"] == "https://{codename}.hochiminhcity.gov.vn/"
    units = doc["units"]
    assert len(units) == 168
    assert Counter(u["type"] for u in units) == {"phường": 113, "xã": 54, "đặc khu": 1}
    assert {"code": 26536, "name": "Phường Rạch Dừa", "type": "phường", "codename": "phuong-rach-dua",
            "merged_from": []} in units
    assert "name: Phường Rạch Dừa\n" in text  # readable, not \u escapes
    inv = parse_inventory(text, "s.yaml", config_for=FAKE.__getitem__, system_resolver=RESOLVER)
    assert len(inv.units) == 168
    assert inv.targets_by_service() == {"portal": 168, "email": 336}  # email: dns MX + email probe


def test_skeleton_is_stable_and_takes_domain_suffix() -> None:
    assert skeleton(79) == skeleton(79)
    text = skeleton(79, "tphcm.gov.vn")
    assert 'portal: https://{codename}.tphcm.gov.vn/' in text


def test_every_province_skeleton_validates() -> None:
    total = 0
    for p in provinces():
        inv = parse_inventory(skeleton(p), f"{p}.yaml", config_for=FAKE.__getitem__, system_resolver=RESOLVER)
        total += len(inv.units)
    assert total == 3321


def test_init_command(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    dest = tmp_path / "inventory.yaml"
    assert inventory_cmd.init_inventory(79, dest, out=out, err=err) == 0
    assert out.getvalue() == f"{dest}: wrote 168 units of province 79 (Thành phố Hồ Chí Minh)\n"
    first = dest.read_text(encoding="utf-8")

    dest.write_text("mine\n")
    err = io.StringIO()
    assert inventory_cmd.init_inventory(79, dest, out=out, err=err) == 2
    assert err.getvalue() == f"{dest}: already exists (use --force to overwrite)\n"
    assert dest.read_text() == "mine\n"

    assert inventory_cmd.init_inventory(79, dest, force=True, out=out, err=err) == 0
    assert dest.read_text(encoding="utf-8") == first

    out, err = io.StringIO(), io.StringIO()
    assert inventory_cmd.validate_inventory(
        dest, config_for=FAKE.__getitem__, system_resolver=RESOLVER, out=out, err=err
    ) == 0, err.getvalue()
    assert "168 units, 504 targets (portal 168, email 336)" in out.getvalue()


def test_init_unknown_province_and_stdout(tmp_path: Path) -> None:
    err = io.StringIO()
    assert inventory_cmd.init_inventory(99, tmp_path / "x.yaml", err=err) == 2
    assert err.getvalue().startswith("inventory init: unknown province code 99; valid codes: 1 (Thành phố Hà Nội)")
    assert not (tmp_path / "x.yaml").exists()
    out = io.StringIO()
    assert inventory_cmd.init_inventory(4, "-", out=out) == 0
    assert yaml.safe_load(out.getvalue())["province"] == 4


def test_init_validates_with_real_probe_configs(tmp_path: Path) -> None:
    dest = tmp_path / "inventory.yaml"
    assert inventory_cmd.init_inventory(79, dest, out=io.StringIO()) == 0
    out, err = io.StringIO(), io.StringIO()
    assert inventory_cmd.validate_inventory(dest, out=out, err=err) == 0, err.getvalue()
