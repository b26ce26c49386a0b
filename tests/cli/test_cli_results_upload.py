"""``testgate results upload``: JUnit XML from an external CI becomes a finished execution."""

from __future__ import annotations


def test_uploading_a_junit_report_creates_a_finished_execution_with_its_results(cli, junit_dir) -> None:
    report = junit_dir / "junit-report-errror-details.xml"

    uploaded = cli.json("results", "upload", str(report), "--workflow", "nightly", "--tag", "ci=jenkins")

    assert uploaded["source"] == "upload"
    assert uploaded["status"] == "failed"
    assert uploaded["tags"] == {"ci": "jenkins"}
    listed = cli.json("execution", "list", "--workflow", "nightly")["executions"]
    assert [e["id"] for e in listed] == [uploaded["id"]]
    results = cli.json("execution", "results", uploaded["id"], "--failed")["results"]
    assert [(r["name"], r["status"]) for r in results] == [("testHudsonReporting", "errored")]


def test_several_files_go_into_one_execution(cli, junit_dir) -> None:
    files = [str(junit_dir / "JENKINS-12457_TestSuite_a1.xml"), str(junit_dir / "JENKINS-12457_TestSuite_a2.xml")]

    uploaded = cli.json("results", "upload", *files, "--workflow", "nightly")

    assert uploaded["number"] == 1
    assert uploaded["tests"]["total"] == cli.json("execution", "results", uploaded["id"])["total"]


def test_a_hostile_report_is_refused_and_records_nothing(cli, junit_dir) -> None:
    result = cli("results", "upload", str(junit_dir / "testXxe-xxe.xml"), "--workflow", "nightly")

    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert cli.json("execution", "list")["executions"] == []


def test_a_bad_workflow_name_names_the_field(cli, junit_dir) -> None:
    result = cli("results", "upload", str(junit_dir / "TEST-null.xml"), "--workflow", "Not A Name")

    assert result.exit_code == 1
    assert "workflow:" in result.stderr
