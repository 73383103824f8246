"""The Automations page in a real Chromium, on a server whose automations run on its embedded bus:

- a rule made with the form (a webhook to a receiver of the test) is listed with its trigger, actions, webhook
  host and a "secret kept" badge; an inference set that fails its gate runs it, and the run shows in the runs
  table ("0 of 1 gates passed"), in its detail (the FAIL row linking to the segment, the figures, each delivery
  attempt with its status code) and as the set's verdict on the overview; the receiver got it signed;
- the secret is in no page's HTML and in no answer the page fetched, also when the rule is changed (its secret
  kept);
- a rule is paused, resumed and deleted after a confirmation, and its runs stay listed and open, the job a
  run started linking to the jobs page;
- a refused field (a bad URL, a short secret, an action's missing inference set) shows the service's message
  beside it, and nothing is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from tests.console.conftest import Console, sign_in
from tests.server.test_automations import SECRET, Receiver, create_project, finished_run, upload_predictions

pytestmark = pytest.mark.browser

PROJECT = "gated"


@pytest.fixture(scope="module")
def gated(console: Console) -> str:
    """A classification project: dataset ``d``, a regression-test segment ``core`` whose gate (accuracy at
    least 0.8) a set of wrong predictions fails, and the empty inference sets good-1, bad-1 and good-2."""
    with console.client() as c:
        create_project(c, PROJECT)
    return PROJECT


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The webhook receiver of the module's rules: it answers the first delivery with a 500, then 200."""
    with Receiver(answers=(500,)) as r:
        yield r


def _open(page: Any, console: Console, fragment: str = "") -> None:
    page.goto(f"{console.url}/#/p/{PROJECT}/automations{fragment}")
    page.wait_for_selector("#automation-form[data-mode='new'], #automation-run")


def _answers(responses: list[Any]) -> str:
    """The bodies of every answer of the console's API the page fetched."""
    out = []
    for r in responses:
        if "/api/" in r.url:
            out.append(r.text())
    return "\n".join(out)


def test_a_rule_made_in_the_form_runs_on_a_failing_set_and_its_run_shows_gates_and_deliveries(
    console: Console, gated: str, receiver: Receiver, page: Any
) -> None:
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r))
    sign_in(page, console)
    with console.client() as c:
        _open(page, console)
        page.fill("#rule-name", "release-gates")
        page.fill("#rule-description", "every new model is measured and gated")
        page.select_option("#rule-trigger-dataset", "d")
        # the form starts with the metrics and the gates, in that order
        assert page.eval_on_selector_all("#rule-actions li", "els => els.map(e => e.dataset.kind)") == [
            "AUTOMATION_ACTION_KIND_METRICS",
            "AUTOMATION_ACTION_KIND_GATES",
        ]
        page.fill("#rule-webhook-url", receiver.url)
        page.fill("#rule-webhook-secret", SECRET)
        page.click("#save-rule")
        row = "#rule-release-gates"
        page.wait_for_selector(f"{row} .secret-kept")
        assert page.input_value("#rule-webhook-secret") == ""  # the form forgets it once sent
        text = page.inner_text(row)
        assert "127.0.0.1:" in text and "active" in text and "on failure" in text, text
        assert "record the metrics" in text and "evaluate the regression gates" in text and "dataset d" in text
        assert SECRET not in page.content()
        made = c.analysis.GetAutomation(apb.GetAutomationRequest(project=gated, name="release-gates")).automation
        assert (made.trigger.dataset, made.webhook.url, made.webhook.has_secret) == ("d", receiver.url, True)
        assert [a.kind for a in made.actions] == [apb.AUTOMATION_ACTION_KIND_METRICS, apb.AUTOMATION_ACTION_KIND_GATES]

        # a set whose predictions are all wrong fails the gate: the run is recorded, the receiver told
        upload_predictions(c, gated, "bad-1", right=False)
        run = finished_run(c, gated, "release-gates", "bad-1")
        page.click("#refresh-runs")
        # the page may have shown the run while it ran: its row turns succeeded
        run_row = f"#automation-runs tr[data-run-id='{run.run_id}'][data-state='AUTOMATION_RUN_STATE_SUCCEEDED']"
        page.wait_for_selector(run_row)
        cells = page.inner_text(run_row)
        assert "0 of 1 gates passed" in cells and "succeeded" in cells and "bad-1" in cells, cells
        assert page.inner_text(f"{run_row} .run-attempts") == "1"
        page.wait_for_selector(f"{row} td.last-run[data-state='AUTOMATION_RUN_STATE_SUCCEEDED']")

        page.click(f"{run_row} a.run-link")
        page.wait_for_selector(f"#automation-run[data-run-id='{run.run_id}']")
        assert "0 of 1 gates passed" in page.inner_text("#run-gates-summary")
        gate = page.inner_text(".run-gates tr.gate-fail")
        assert "FAIL" in gate and "core" in gate and "accuracy" in gate and "0.8000" in gate, gate
        link = page.get_attribute(".run-gates tr.gate-fail a.segment-link", "href")
        assert "/examples?" in link and "segment=core" in link and "inference_set=bad-1" in link, link
        assert page.inner_text(".run-metrics tr[data-metric='accuracy'] td.num") == "0"
        # the 500 was tried again: both attempts, with their status codes
        attempts = page.eval_on_selector_all(
            "#run-deliveries tbody tr", "els => els.map(e => [e.dataset.attempt, e.dataset.status])"
        )
        assert attempts == [["1", "500"], ["2", "200"]]
        assert "gates.failed" in page.inner_text("#run-deliveries")
        assert [(r["status"], r["event"], r["signed"]) for r in receiver.received] == [
            (500, "gates.failed", True),
            (200, "gates.failed", True),
        ]
        assert SECRET not in page.content()

        # the set's verdict on the overview, linking to the run
        page.goto(f"{console.url}/#/p/{gated}")
        verdict = f"td.automation-verdict[data-inference-set='bad-1'] a[href*='run={run.run_id}']"
        page.wait_for_selector(verdict)
        assert "0 of 1 gates passed" in page.inner_text(verdict)

        # changed without a secret: the one kept stays, and is still never shown
        _open(page, console)
        page.click(f"{row} button.edit")
        page.wait_for_selector("#automation-form[data-mode='edit'] #secret-kept:not([hidden])")
        assert page.input_value("#rule-webhook-secret") == "" and page.input_value("#rule-webhook-url") == receiver.url
        page.fill("#rule-description", "gated, and told every time")
        page.check("#rule-webhook-always")
        page.click("#save-rule")
        page.wait_for_selector(f"{row}:has-text('every run')")
        changed = c.analysis.GetAutomation(apb.GetAutomationRequest(project=gated, name="release-gates")).automation
        assert (changed.description, changed.webhook.always, changed.webhook.has_secret) == (
            "gated, and told every time",
            True,
            True,
        )
        assert SECRET not in page.content()
    answers = _answers(responses)
    assert "has_secret" in answers and "release-gates" in answers  # the rule's answers were read
    assert SECRET not in answers


def test_a_rule_is_paused_resumed_and_deleted_and_its_runs_stay(console: Console, gated: str, page: Any) -> None:
    with console.client() as c:
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=gated, automation=apb.Automation(
            name="measure", trigger=apb.AutomationTrigger(kind=apb.AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE),
            actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS),
                     apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_LABEL_ISSUES)])))  # fmt: skip
        upload_predictions(c, gated, "good-1", right=True, chunk_size=60)
        run = finished_run(c, gated, "measure", "good-1")
        sign_in(page, console)
        _open(page, console)
        row = "#rule-measure"
        page.wait_for_selector(f"{row}[data-paused='false'] td.last-run[data-state]")
        assert page.inner_text(f"{row} .rule-webhook") == "none"

        page.click(f"{row} button.pause")
        page.wait_for_selector(f"{row}[data-paused='true'] .pill.paused")
        assert c.analysis.GetAutomation(apb.GetAutomationRequest(project=gated, name="measure")).automation.paused
        page.click(f"{row} button.resume")
        page.wait_for_selector(f"{row}[data-paused='false'] .pill.active")
        assert not c.analysis.GetAutomation(apb.GetAutomationRequest(project=gated, name="measure")).automation.paused

        # deleting asks first; "keep it" keeps it
        page.click(f"{row} button.delete")
        page.click(f"{row} button.cancel-delete")
        page.wait_for_selector(f"{row} button.delete")
        page.click(f"{row} button.delete")
        page.click(f"{row} button.confirm-delete")
        page.wait_for_selector(row, state="detached")
        names = [a.name for a in c.analysis.ListAutomations(apb.ListAutomationsRequest(project=gated)).automations]
        assert "measure" not in names

        # its run is still listed, and its name still filters the runs
        page.wait_for_selector(f"#automation-runs tr[data-run-id='{run.run_id}']")
        page.select_option("#runs-automation", "measure")
        page.wait_for_function(
            """() => { const rows = [...document.querySelectorAll('#automation-runs tbody tr')];
                       return rows.length > 0 && rows.every(r => r.dataset.automation === 'measure'); }"""
        )
        assert page.eval_on_selector_all("#automation-runs tbody tr", "els => els.map(e => e.dataset.runId)") == [
            run.run_id
        ]
        assert "automation=measure" in page.url
        # and opens, with the job it started linking to the jobs page
        page.click(f"#automation-runs tr[data-run-id='{run.run_id}'] a.run-link")
        page.wait_for_selector(f"#automation-run[data-run-id='{run.run_id}'] .run-metrics")
        assert page.query_selector("#run-gates-summary") is None  # no gates action: no gate count
        job_id = run.steps[1].job_id
        assert job_id and page.inner_text(".run-step a.job-link") == job_id
        page.click(".run-step a.job-link")
        page.wait_for_selector(f"#jobs tr#job-{job_id}.highlight")


def test_refused_fields_show_the_message_beside_them_and_nothing_is_made(
    console: Console, gated: str, page: Any
) -> None:
    sign_in(page, console)
    _open(page, console)

    def refused(path: str) -> str:
        page.click("#save-rule")
        error = f"#automation-form [data-field='{path}'] > .field-error:not([hidden])"
        page.wait_for_selector(error)
        assert page.inner_text("#rule-form-message") == "Not saved: see the field marked."
        shown = page.eval_on_selector_all(
            "#automation-form .field-error:not([hidden])", "els => els.map(e => e.parentElement.dataset.field)"
        )
        assert shown == [path]  # only the field refused is marked
        return page.inner_text(error)

    page.fill("#rule-name", "bad-hook")
    page.fill("#rule-webhook-url", "ftp://example.com/hook")
    page.fill("#rule-webhook-secret", SECRET)
    message = refused("webhook.url")
    assert "must be an http:// or https:// URL" in message and not message.startswith("automation."), message
    assert page.get_attribute("#rule-webhook-url", "aria-invalid") == "true"

    page.fill("#rule-webhook-url", "https://ci.example.com/hooks/shoal")
    page.fill("#rule-webhook-secret", "short")
    assert "16 to 256 characters" in refused("webhook.secret")
    assert page.get_attribute("#rule-webhook-url", "aria-invalid") is None  # the earlier mark is gone

    # labels changed name no inference set: the first action must name one
    page.fill("#rule-webhook-url", "")
    page.fill("#rule-webhook-secret", "")
    page.select_option("#rule-trigger-kind", "AUTOMATION_TRIGGER_KIND_LABELS_CHANGED")
    page.select_option("#rule-trigger-dataset", "d")
    assert "names no inference set" in refused("actions[0].inference_set")
    assert SECRET not in page.content()
    with console.client() as c:
        names = [a.name for a in c.analysis.ListAutomations(apb.ListAutomationsRequest(project=gated)).automations]
    assert "bad-hook" not in names
    assert page.get_attribute("#rule-actions li[data-index='0'] select.action-inference-set", "aria-invalid") == "true"
