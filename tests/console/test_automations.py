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
  beside it, and nothing is made;
- each action kind shows its own fields only when chosen (the changed-frames box with a labels-changed trigger,
  the thresholds of sending to labeling not with a full campaign's); "label issues -> send the worst 3 to
  labeling, 10 a day" made with the form (a daily budget of 0 refused beside its input) runs on a set with
  planted label errors, and its run shows 3 frames sent, each with its reason, and the request, in the runs
  table, the rule's last run and the run's detail;
- a standing campaign that fills runs its rule once, and the run's detail names the campaign and lists every
  kept frame sent, with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from tests.console.conftest import Console, sign_in
from tests.server.test_automations import (
    MISLABELED,
    SECRET,
    N,
    Receiver,
    create_project,
    finished_run,
    triage_rule,
    upload_predictions,
)

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


def _open(page: Any, console: Console, fragment: str = "", project: str = PROJECT) -> None:
    page.goto(f"{console.url}/#/p/{project}/automations{fragment}")
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


TRIAGED = "triaged"
SEND = "AUTOMATION_ACTION_KIND_SEND_TO_LABELING"


@pytest.fixture(scope="module")
def triaged(console: Console) -> str:
    """A classification project as ``gated``'s, with the empty inference set noisy-1."""
    with console.client() as c:
        create_project(c, TRIAGED, inference_sets=("noisy-1",))
    return TRIAGED


def test_each_action_shows_its_own_fields_and_a_triage_rule_made_in_the_form_sends_the_worst_frames(
    console: Console, triaged: str, page: Any
) -> None:
    from playwright.sync_api import expect

    sign_in(page, console)
    _open(page, console, project=triaged)
    row = "#rule-actions li[data-index='{}']"

    def kind(i: int, value: str) -> None:
        page.select_option(f"{row.format(i)} select.action-kind", value)
        expect(page.locator(row.format(i))).to_have_attribute("data-kind", value)

    def shown(i: int) -> list[str]:
        """The fields of action i, as the service names them."""
        return page.eval_on_selector_all(
            f"{row.format(i)} [data-field]", "els => els.map(e => e.dataset.field.replace(/^actions\\[\\d+\\]\\./, ''))"
        )

    # each kind its own fields, and only when chosen
    assert shown(0) == ["kind", "inference_set", "confidence_threshold"]  # metrics
    kind(0, "AUTOMATION_ACTION_KIND_NEIGHBORS")
    assert shown(0) == ["kind", "embedding_space"]
    assert page.eval_on_selector_all(
        f"{row.format(0)} select.action-embedding-space option", "os => os.map(o => o.value)"
    ) == ["emb"]
    kind(0, "AUTOMATION_ACTION_KIND_LABEL_ISSUES")
    assert shown(0) == ["kind", "inference_set"]
    kind(1, SEND)
    assert shown(1) == ["kind", "max_frames", "daily_budget", "min_issues", "min_issue_share", "platform"]
    # a full campaign's rule sends the frames the campaign kept: no thresholds on label issues
    page.select_option("#rule-trigger-kind", "AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL")
    expect(page.locator(f"{row.format(1)} .action-min-issues")).to_have_count(0)
    assert shown(1) == ["kind", "max_frames", "daily_budget", "platform"]
    # labels changed: the metrics may measure the changed frames alone, and name the set they read
    page.select_option("#rule-trigger-kind", "AUTOMATION_TRIGGER_KIND_LABELS_CHANGED")
    kind(0, "AUTOMATION_ACTION_KIND_METRICS")
    assert shown(0) == ["kind", "inference_set", "confidence_threshold", "changed_frames"]
    assert page.inner_text(f"{row.format(0)} select.action-inference-set option:first-child") == "(choose one)"

    # label issues -> send the worst 3 to labeling, 10 a day
    page.select_option("#rule-trigger-kind", "AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE")
    expect(page.locator(f"{row.format(0)} .action-changed-frames")).to_have_count(0)
    kind(0, "AUTOMATION_ACTION_KIND_LABEL_ISSUES")
    page.fill("#rule-name", "triage")
    page.select_option("#rule-trigger-dataset", "d")
    page.fill("#rule-trigger-prefix", "noisy")
    page.fill(f"{row.format(1)} .action-max-frames", "3")
    page.fill(f"{row.format(1)} .action-daily-budget", "0")
    page.click("#save-rule")
    budget = page.locator("#automation-form [data-field='actions[1].daily_budget']")
    expect(budget.locator(":scope > .field-error")).to_contain_text("must be at least 1")
    expect(budget.locator("input")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#rule-form-message")).to_have_text("Not saved: see the field marked.")
    assert page.eval_on_selector_all(
        "#automation-form .field-error:not([hidden])", "els => els.map(e => e.parentElement.dataset.field)"
    ) == ["actions[1].daily_budget"]
    with console.client() as c:
        names = [a.name for a in c.analysis.ListAutomations(apb.ListAutomationsRequest(project=triaged)).automations]
        assert "triage" not in names

    page.fill(f"{row.format(1)} .action-daily-budget", "10")
    page.click("#save-rule")
    rule = page.locator("#rule-triage")
    expect(rule).to_contain_text("send frames to labeling at most 3 a run and 10 a day")
    expect(page.locator("#automation-form")).to_have_attribute("data-mode", "new")
    with console.client() as c:
        made = c.analysis.GetAutomation(apb.GetAutomationRequest(project=triaged, name="triage")).automation
        assert made.actions == triage_rule("triage", "noisy", max_frames=3, daily_budget=10).actions
        assert made.trigger.inference_set_prefix == "noisy"

        # a set with planted label errors: its worst 3 go to labeling, each with its reason
        upload_predictions(c, triaged, "noisy-1", right=False, wrong=MISLABELED, chunk_size=N)
        run = finished_run(c, triaged, "triage", "noisy-1")
    assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
    got = run.steps[1].labeling
    assert len(got.frames) == 3 and got.flagged == MISLABELED and got.request_id

    page.click("#refresh-runs")
    run_row = page.locator(
        f"#automation-runs tr[data-run-id='{run.run_id}'][data-state='AUTOMATION_RUN_STATE_SUCCEEDED']"
    )
    expect(run_row.locator(".run-labeling .sent-count")).to_have_text("3 frames sent")
    expect(run_row.locator(".run-labeling .sent-request")).to_have_text(f"request {got.request_id}")
    expect(rule.locator("td.last-run .last-run-sent")).to_have_text("3 sent to labeling")

    run_row.locator("a.run-link").click()
    step = page.locator(f".run-step[data-action='{SEND}'] .step-labeling")
    expect(step).to_have_attribute("data-sent", "3")
    expect(step.locator(".labeling-request")).to_have_text(got.request_id)
    expect(step.locator(".labeling-summary")).to_contain_text(
        f"Sent 3 frames of the {MISLABELED} flagged ({N} examined)"
    )
    frames = step.locator("table.labeling-frames tbody tr")
    expect(frames).to_have_count(3)
    assert frames.evaluate_all("rs => rs.map(r => r.dataset.frameId)") == [f.frame_id for f in got.frames]
    reasons = step.locator(".labeling-reason").all_inner_texts()
    assert reasons == [f.reason for f in got.frames]
    assert all(r.startswith("label issue: labeled c") for r in reasons), reasons
    link = step.locator("a.frame-link").first.get_attribute("href")
    assert f"/frame/d/{got.frames[0].frame_id}" in link, link


def test_a_full_campaigns_rule_is_made_in_the_form_without_the_label_issue_thresholds(
    console: Console, triaged: str, page: Any
) -> None:
    from playwright.sync_api import expect

    sign_in(page, console)
    _open(page, console, project=triaged)
    page.fill("#rule-name", "cones-to-labeling")
    page.select_option("#rule-trigger-kind", "AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL")
    page.fill("#rule-trigger-campaign", "cones")
    page.click("#rule-actions li[data-index='1'] button.remove-action")
    first = page.locator("#rule-actions li[data-index='0']")
    first.locator("select.action-kind").select_option(SEND)
    expect(page.locator("#rule-actions li")).to_have_count(1)
    first.locator(".action-max-frames").fill("5")
    first.locator(".action-daily-budget").fill("20")
    page.click("#save-rule")
    expect(page.locator("#rule-cones-to-labeling")).to_contain_text("standing campaign cones")
    with console.client() as c:
        made = c.analysis.GetAutomation(apb.GetAutomationRequest(project=triaged, name="cones-to-labeling")).automation
    assert made.trigger.campaign == "cones"
    assert made.actions == [apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING, max_frames=5,
                                                 daily_budget=20)]  # fmt: skip


def test_a_full_campaigns_run_shows_the_campaign_and_each_kept_frame_sent(console: Console, page: Any) -> None:
    """A standing campaign with a budget of 6 fills from one upload: the rule made for it runs once, and its run's
    detail names the campaign (linking to its frames) and lists the 6 kept frames sent, each with its reason."""
    from playwright.sync_api import expect

    from shoal.sampler.v1 import sampler_pb2 as spb
    from tests.server.test_sampler_standing import create_stream_project, start, stream_data, upload_batch

    project = "streamed"
    d = stream_data(uploads=1, seed=6)
    with console.client() as c:
        create_stream_project(c, project, d)
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=apb.Automation(
            name="cones-full", trigger=apb.AutomationTrigger(
                kind=apb.AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL, campaign="cones"),
            actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING, max_frames=10,
                                          daily_budget=10)])))  # fmt: skip
        start(c, project, "cones", budget=6)
        upload_batch(c, project, d["batches"][0])
        run = finished_run(c, project, "cones-full", "")
        kept = c.standing_campaign(project, "cones")
    assert kept.campaign.state == spb.STANDING_CAMPAIGN_STATE_FULL and len(kept.frame_ids) == 6
    assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
    got = run.steps[0].labeling
    assert [f.frame_id for f in got.frames] == kept.frame_ids and got.segment == "cones"

    sign_in(page, console)
    _open(page, console, f"?run={run.run_id}", project=project)
    expect(page.locator("#run-campaign")).to_have_text("cones")
    assert "segment=cones" in (page.locator("#run-campaign").get_attribute("href") or "")
    step = page.locator(f".run-step[data-action='{SEND}'] .step-labeling")
    expect(step).to_have_attribute("data-sent", "6")
    expect(step.locator(".labeling-summary")).to_contain_text("Sent 6 frames of the 6 kept by standing campaign cones")
    expect(step.locator(".labeling-request")).to_have_text(got.request_id)
    frames = step.locator("table.labeling-frames tbody tr")
    expect(frames).to_have_count(6)
    assert frames.evaluate_all("rs => rs.map(r => r.dataset.frameId)") == kept.frame_ids
    reasons = step.locator(".labeling-reason").all_inner_texts()
    assert reasons == [f.reason for f in got.frames]
    assert all(r.startswith("kept by standing campaign cones (cosine similarity >= 0.85") for r in reasons), reasons
