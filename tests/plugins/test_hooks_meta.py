"""Every hook specification has a test that exercises it and a section in docs/plugins.md
(after Datasette's test_plugin_hooks_have_tests / test_plugin_hooks_are_documented)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unidesk.core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    n for n in dir(hookspecs) if n.startswith("unidesk_") and callable(getattr(hookspecs, n))
)

TESTED_BY: dict[str, list[str]] = {
    "unidesk_route_handlers": [
        "tests/plugins/test_third_party_plugin.py::test_installed_plugin_route_migration_listener_ui",
        "tests/plugins/test_third_party_plugin.py::test_two_plugins_claiming_one_route",
    ],
    "unidesk_models": [
        "tests/plugins/test_third_party_plugin.py::test_installed_plugin_route_migration_listener_ui"
    ],
    "unidesk_migrations": [
        "tests/plugins/test_third_party_plugin.py::test_installed_plugin_route_migration_listener_ui",
        "tests/plugins/test_third_party_plugin.py::test_plugins_off_core_works_and_plugin_tables_untouched",
    ],
    "unidesk_ui_contributions": [
        "tests/plugins/test_third_party_plugin.py::test_installed_plugin_route_migration_listener_ui"
    ],
    "unidesk_cli_commands": ["tests/plugins/test_plugin_hooks.py::test_cli_commands_of_plugins"],
    "unidesk_settings": [
        "tests/plugins/test_plugin_settings.py::test_plugin_settings_from_file_and_env_env_wins",
        "tests/plugins/test_plugin_settings.py::test_bad_or_unknown_plugin_setting_takes_only_that_plugin_out",
        "tests/plugins/test_research_api.py::test_sweep_cap_is_a_setting",
    ],
    "unidesk_startup": [
        "tests/plugins/test_plugin_hooks.py::test_startup_hook_resyncs_links_that_missed_events"
    ],
    "unidesk_event_listeners": [
        "tests/plugins/test_third_party_plugin.py::test_installed_plugin_route_migration_listener_ui",
        "tests/plugins/test_projects_api.py::test_task_submitted_with_work_item_shows_its_runs",
    ],
    "unidesk_task_extension_names": [
        "tests/plugins/test_research_api.py::test_bad_metrics_are_refused_and_store_nothing"
    ],
    "unidesk_task_submitting": [
        "tests/plugins/test_projects_api.py::test_task_submitted_with_work_item_shows_its_runs",
        "tests/plugins/test_research_api.py::test_runs_metrics_and_comparison",
    ],
    "unidesk_task_account": [
        "tests/plugins/test_projects_api.py::test_a_task_of_a_work_item_is_charged_to_its_project",
    ],
    "unidesk_task_links": [
        "tests/plugins/test_pipelines_api.py::test_step_task_links_back_to_its_pipeline",
        "tests/plugins/test_pipelines_api.py::test_step_tasks_link_to_work_items_and_experiments",
    ],
    "unidesk_project_member": [
        "tests/core/test_secrets.py::test_project_secret_needs_membership_through_the_plugin",
    ],
    "unidesk_attempt_data": [
        "tests/plugins/test_research_api.py::test_attempt_data_hook_stores_good_points_and_names_bad_ones",
        "tests/integration/test_metrics_flow.py::test_sweep_runs_report_metrics_through_the_agent",
    ],
}


def test_hook_list_is_not_empty() -> None:
    assert len(HOOKS) >= 10, HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook: str) -> None:
    assert hook in TESTED_BY, (
        f"{hook} has no test listed in TESTED_BY (write one, then list it here)"
    )
    for ref in TESTED_BY[hook]:
        path, _, name = ref.partition("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.M), (
            f"{ref} (listed for {hook}) does not exist"
        )


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook: str) -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert re.search(rf"^### {hook}$", guide, re.M), f"docs/plugins.md has no '### {hook}' section"


def test_no_stale_entries() -> None:
    assert set(TESTED_BY) <= set(HOOKS), set(TESTED_BY) - set(HOOKS)
