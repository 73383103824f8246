"""A rule's webhook secret is kept sealed in the metrics store: the row holds no trace of it, and
deliveries are still signed with it. A server whose key differs cannot open it: the run's webhook
step fails, saying so, and nothing is delivered unsigned; the rule can still be paused and resumed,
and works again once its secret is given again."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import error_detail
from shoal.common.secretbox import PREFIX
from tests.conftest import server_settings
from tests.server.conftest import Running, project_name, start_server
from tests.server.test_automations import (
    SECRET,
    Receiver,
    create_project,
    finished_run,
    gate_rule,
    upload_predictions,  # fmt: skip
)

KEY_A = "the first key of these servers, long enough"
KEY_B = "another key altogether, also long enough!!"


def stored_secret(r: Running, project: str) -> str:
    rows = r.server.stores.metrics.query(
        "SELECT webhook_secret FROM automations FINAL WHERE project = {p:String} AND name = 'gates'", {"p": project}
    ).rows
    return str(rows[0][0])


def test_the_secret_is_sealed_at_rest_and_a_changed_key_fails_the_delivery_until_it_is_set_again(
    tmp_path: Path, chdb_path: Path
) -> None:
    project = project_name("sealed-secret")
    database = f"t_sealed_{project[-6:]}"

    def server(key: str) -> Running:
        return start_server(server_settings(tmp_path / "data", chdb_path, database, automations_secret_key=key))

    with Receiver() as receiver:
        first = server(KEY_A)
        try:
            with first.client(first.admin_key) as c:
                create_project(c, project)
                c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project,
                                                                        automation=gate_rule("gates", receiver.url)))  # fmt: skip
                kept = stored_secret(first, project)
                assert kept.startswith(PREFIX) and SECRET not in kept
                upload_predictions(c, project, "bad-1", right=False)
                run = finished_run(c, project, "gates", "bad-1")
                assert len(run.deliveries) == len(receiver.received) == 1 and receiver.received[0]["signed"]
        finally:
            first.server.stop(grace=1)

        second = server(KEY_B)  # the same store, another key
        try:
            with second.client(second.admin_key) as c:
                upload_predictions(c, project, "good-1", right=False)
                run = finished_run(c, project, "gates", "good-1")
                assert run.state == apb.AUTOMATION_RUN_STATE_FAILED, run.message
                assert "cannot be opened with this server's key" in run.message, run.message
                assert not run.deliveries and len(receiver.received) == 1  # nothing went out unsigned
                c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="gates", paused=True))
                c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="gates", paused=False))
                assert stored_secret(second, project) == kept  # written back as it was
                rule = c.analysis.GetAutomation(apb.GetAutomationRequest(project=project, name="gates")).automation
                assert rule.webhook.url == receiver.url and not rule.webhook.has_secret
                with pytest.raises(grpc.RpcError) as info:  # the URL alone would keep a secret nobody can open
                    c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(
                        project=project, name="gates", webhook=apb.AutomationWebhook(url=receiver.url)))  # fmt: skip
                assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert error_detail(info.value).field == "webhook.secret"
                assert "give the secret again" in str(info.value.details())
                c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(
                    project=project, name="gates", webhook=apb.AutomationWebhook(url=receiver.url, secret=SECRET)))  # fmt: skip
                assert stored_secret(second, project) not in (kept, SECRET)
                upload_predictions(c, project, "good-2", right=False)
                again = finished_run(c, project, "gates", "good-2")
                assert len(again.deliveries) == 1 and len(receiver.received) == 2, again.message
                assert receiver.received[1]["signed"]
        finally:
            second.server.stop(grace=1)
