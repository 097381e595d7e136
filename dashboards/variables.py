"""The template variables the target dashboards share: data source, province, unit, service.

Values come from wardwatch_target_state, which every target has whatever its probe. The unit
variable's value is the unit code (the label alerts link with: ``var-unit_code=...``) and its
text "code · name", so units with the same commune name in two provinces stay apart.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import datasource_variable, query_variable

UNIT_REGEX = '/unit_code="(?<value>[^"]*)",unit_label="(?<text>[^"]*)"/'


def province() -> db.QueryVariable:
    return query_variable("province", "Province", "label_values(wardwatch_target_state, province)", sort_numeric=True)


def unit(*, multi: bool = True) -> db.QueryVariable:
    q = (
        'query_result(max by (unit_code, unit_label) (label_join(wardwatch_target_state{province=~"$province"}, '
        '"unit_label", " · ", "unit_code", "unit")))'
    )
    return query_variable("unit_code", "Unit", q, multi=multi, regex=UNIT_REGEX)


def service() -> db.QueryVariable:
    return query_variable(
        "service", "Service",
        'label_values(wardwatch_target_state{province=~"$province",unit_code=~"$unit_code"}, service)',
    )


def target_scope(d: db.Dashboard, *, multi_unit: bool = True) -> db.Dashboard:
    return d.with_variable(datasource_variable()).with_variable(province()).with_variable(
        unit(multi=multi_unit)).with_variable(service())
