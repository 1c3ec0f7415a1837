# pyright: strict
"""Code a user writes against the installed obshell_sdk, type-checked by pyright (never run).

``pyright --verifytypes`` scores the public API's own annotations; it never checks a call
through them. This file does: every call of the client's mixed-in groups (tasks, packages),
whose methods take ``self`` as the protocol the client must satisfy, and the main path.
"""

from __future__ import annotations

from obshell_sdk import (
    AgentInfo,
    DagDetail,
    NodeDetail,
    ObParameter,
    ObshellClient,
    Operator,
    OperatorRefusedError,
    PasswordAuth,
    PollPolicy,
    UpgradeAgentRequest,
    UpgradeObRequest,
    UpgradePackageInfo,
    UpgradeResult,
)


def every_call(client: ObshellClient) -> tuple[object, ...]:
    """The client's calls, their results typed as the docs say."""
    dag: DagDetail = client.get_dag("11", timeout=5)
    node: NodeDetail = client.get_node("21")
    logs: list[str] = client.sub_task_logs("31")
    unfinished: list[DagDetail] = client.unfinished_dags(timeout=(3, 10))
    last: DagDetail | None = client.last_maintenance_dag()
    cluster: list[DagDetail] = client.cluster_dags()
    client.operate_dag(dag.id, "RETRY")
    package: UpgradePackageInfo = client.upload_package("obshell.rpm", lifetime=600)
    packages: list[UpgradePackageInfo] = client.packages()
    client.delete_package(package.pkg_id)
    params: list[ObParameter] = client.backup_params()
    client.restore_params()
    client.check_environment()
    info: AgentInfo = client.info()
    return node, logs, unfinished, last, cluster, packages, params, info


def main_path() -> tuple[UpgradeResult, DagDetail, float | None]:
    """The README's job: upgrade an agent, followed to the end."""
    with ObshellClient("127.0.0.1", 2886, auth=PasswordAuth("pw")) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        final: DagDetail = task.result(timeout=1800)
        result = client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", check=False)
        return result, final, client.agent_clock_offset


def models_built_by_hand() -> tuple[UpgradeAgentRequest, UpgradeObRequest, PollPolicy]:
    """The attrs models a user builds (their ``__init__`` as pyright sees it through attrs)."""
    agent = UpgradeAgentRequest("4.3.1.0", "101000012025010101.el7", "/home/admin/upgrade")
    ob = UpgradeObRequest("4.3.5.1", "101000012025052815.el7", mode="STOPSERVICE")
    return agent, ob, PollPolicy(initial=1.0).evolve(ceiling=10)


def a_refused_operator(client: ObshellClient) -> tuple[Operator | None, bool, str]:
    """An operator obshell refused, caught by its class: what the error carries, typed."""
    try:
        client.task("11").rollback()
    except OperatorRefusedError as exc:
        return exc.operator, exc.by_step, exc.hint
    return None, False, ""
