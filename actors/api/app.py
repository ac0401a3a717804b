"""The HTTP application: routes only translate HTTP into messages and back.

Every answer is JSON. Every route is declared with its types on the `Router`, which both
serves it and describes it in `/api/v1/openapi.json`.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Any

import msgspec
import structlog
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from actors.advertiser import GetAdvertState
from actors.port_verifier import GetVerification
from actors.pricing import GetPrices
from actors.resource_tracker import CapacityReport, GetCapacity
from actors.vm_lifecycle import (
    CreateVm,
    DeleteVm,
    GetJob,
    GetVm,
    ListVms,
    StartVm,
    StopVm,
    VmNotFound,
    VmView,
    WaitVm,
)
from actors.vpn_router import GetMembership, GetVpnStats, ListNetworks
from golem_actor.domain.port_verdict import StatusReport
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller, token_digest
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.domain.vm_request import check_name, check_ssh_key, normalise_resources
from golem_actor.domain.vpn.status import VpnStatus, vpn_status
from golem_actor.kernel import CallFailed, CallTimeout
from golem_actor.keys import generate_ssh_keypair

from .context import ApiContext
from .errors import ApiError, translate
from .faults import register_fault_routes
from .metrics import CONTENT_TYPE, CreateFailed, Outcomes, failure_reason, observe, render
from .net_api import register_net_api
from .net_links import register_link_route
from .openapi import Router, openapi_document
from .payments import PaymentGate, StreamStatus
from .schemas import (
    AccessInfo,
    Amounts,
    CapacityInfo,
    CreateJob,
    CreateVmBody,
    Deleted,
    ErrorBody,
    Health,
    HostLoadInfo,
    JobInfo,
    NodeState,
    ProviderInfo,
    VmInfo,
)
from .vm_networks import check_networks, join_networks

log = structlog.get_logger("golem_actor.api")

API_PREFIX = "/api/v1"
MAX_BODY = 64 * 1024  # the largest request is a create with a 16 KiB key
_encoder = msgspec.json.Encoder()
_create_decoder = msgspec.json.Decoder(CreateVmBody)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status=status, content_type="application/json")


def resources_body(resources: Resources) -> Amounts:
    return Amounts(cpu=resources.cpus, memory=resources.memory_gb, storage=resources.storage_gib)


def vm_info(view: VmView, *, private_key: str | None = None) -> VmInfo:
    return VmInfo(
        id=view.vm_id,
        name=view.name,
        status=view.status.value,
        resources=resources_body(view.resources),
        image=view.image,
        ip_address=view.ip_address,
        ssh_port=view.ssh_port,
        created_at=view.created_at,
        updated_at=view.updated_at,
        error_message=view.error,
        stream_id=view.stream_id,
        job_id=view.job_id,
        ssh_private_key=private_key,
    )


def caller_of(context: ApiContext) -> Caller:
    """The identity the request proves (see golem_actor.domain.tenancy)."""
    return caller_from(request.headers.get("Authorization"), context.operator_token)


def caller_from(header: str | None, operator_token: str) -> Caller:
    """The identity an `Authorization` header (None: absent) proves; ApiError 401 if it
    is not a bearer token."""
    if header is None:
        return Caller()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Authorization must be 'Bearer <token>'")
    if len(token) > 512:
        raise ApiError(401, "the bearer token is too long")
    if hmac.compare_digest(token.encode(), operator_token.encode()):
        return Caller(operator=True)
    return Caller(tenant=token_digest(token))


def flag(name: str) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("", "1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ApiError(400, f"query parameter {name!r} must be true or false, got {raw!r}")


async def wait_for(
    context: ApiContext, caller: Caller, vm_id: str, settled: set[VmStatus], bound: float
) -> VmView | None:
    """The VM once its status is in `settled`, or as it is after `bound` seconds (None:
    it is gone). The lifecycle answers the moment the VM gets there (`WaitVm`); if it
    crashed meanwhile, its next incarnation is asked for the rest of the bound."""
    request = WaitVm(caller, vm_id, frozenset(settled))
    deadline = trio.current_time() + bound
    while (left := deadline - trio.current_time()) > 0:
        try:
            return await context.lifecycle.with_call_timeout(left).call(request)
        except VmNotFound:
            return None
        except CallTimeout:
            break
        except CallFailed:
            continue  # the lifecycle restarted; the VM's state survived in its registry
    return await context.lifecycle.call(GetVm(caller, vm_id))


async def power(context: ApiContext, request: StopVm | StartVm, goal: VmStatus) -> Response:
    """Ask for a stop or a start, then answer once the VM got there (200) or not yet (202)."""
    await context.lifecycle.call(request)
    bound = context.stop_timeout if goal is VmStatus.STOPPED else context.create_timeout
    view = await wait_for(context, request.caller, request.vm_id, {goal, VmStatus.ERROR}, bound)
    if view is None:
        raise ApiError(404, f"Not Found: no VM {request.vm_id} on this node")
    return json_response(vm_info(view), 200 if view.status is goal else 202)


def build_router(context: ApiContext, outcomes: Outcomes) -> Router:
    """The routes; `outcomes` counts the creates and deletes they answer (for /metrics)."""
    router = Router(API_PREFIX)
    _node_routes(router, context)
    _create_route(router, context, outcomes)
    _vm_routes(router, context, outcomes)
    _stream_routes(router, context)
    _admin_routes(router, context)
    register_fault_routes(router, context, require_operator)  # development mode only
    return router


def _node_routes(router: Router, context: ApiContext) -> None:
    route = router.route

    @route("GET", "/health", "Liveness of the node", responses={200: Health})
    async def health() -> Response:
        return json_response(Health(status="ok", version=context.version))

    @route("GET", "/provider/info", "Who gets paid, and how", responses={200: ProviderInfo})
    async def provider_info() -> Response:
        return json_response(context.provider)


def _create_route(router: Router, context: ApiContext, outcomes: Outcomes) -> None:
    route = router.route

    @route(
        "POST",
        "/vms",
        "Create a VM",
        body=CreateVmBody,
        responses={200: VmInfo, 202: CreateJob},
        query={"async": "answer 202 with a job at once instead of waiting for SSH"},
    )
    async def create_vm() -> Response:
        try:
            answer = await create(caller_of(context))
        except Exception as exc:
            outcomes.create_failed(failure_reason(exc))
            raise
        outcomes.creates["running" if answer.status_code == 200 else "accepted"] += 1
        return answer

    async def create(caller: Caller) -> Response:
        asynchronous = flag("async")
        raw = await request.get_data()
        if not raw:
            raise ApiError(400, "a JSON body is required")
        body = _create_decoder.decode(raw)
        name = check_name(body.name)
        resources = normalise_resources(
            resources=None
            if body.resources is None
            else (body.resources.cpu, body.resources.memory, body.resources.storage),
            size=body.size,
            flat=(body.cpu_cores, body.memory_gb, body.storage_gb),
            minimum=context.minimum,
        )
        image = context.catalog.resolve(body.image, context.backend_kind)
        if body.networks:
            await check_networks(context, caller, body.networks)
        if context.payments is not None:
            if body.stream_id is None:
                raise ApiError(400, "stream_id required when payments are enabled")
            await context.payments.admit(body.stream_id, resources)
        private_key: str | None = None
        if body.ssh_key is None:
            private_key, public = generate_ssh_keypair(f"golem-{name}")
            keys = (public,)
        else:
            keys = (check_ssh_key(body.ssh_key),)
        view = await context.lifecycle.call(
            CreateVm(
                caller=caller,
                name=name,
                resources=resources,
                image=image,
                authorized_keys=keys,
                stream_id=body.stream_id,
                with_job=asynchronous,
            )
        )
        if body.networks:
            await join_networks(context, caller, view.vm_id, body.networks)
        if asynchronous:
            assert view.job_id is not None
            job = CreateJob(
                job_id=view.job_id,
                vm_id=view.vm_id,
                status="creating",
                ssh_private_key=private_key,
            )
            return json_response(job, 202)
        settled = await wait_for(
            context,
            caller,
            view.vm_id,
            {VmStatus.RUNNING, VmStatus.ERROR},
            context.create_timeout,
        )
        if settled is None:
            raise CreateFailed(
                404, f"VM {view.vm_id} was deleted while it was being created", reason="deleted"
            )
        if settled.status is VmStatus.ERROR:
            raise CreateFailed(
                500, f"VM {view.vm_id} could not be created: {settled.error}", reason="vm_error"
            )
        status = 200 if settled.status is VmStatus.RUNNING else 202
        return json_response(vm_info(settled, private_key=private_key), status)


def _vm_routes(router: Router, context: ApiContext, outcomes: Outcomes) -> None:
    route = router.route

    @route(
        "GET",
        "/vms",
        "List the VMs the caller owns (all, for the operator)",
        responses={200: list[VmInfo]},
    )
    async def list_vms() -> Response:
        caller = caller_of(context)
        if context.listing is not None:  # published by the lifecycle: no call needed
            return json_response([vm_info(v) for v in context.listing.visible(caller)])
        views = await context.lifecycle.call(ListVms(caller))
        return json_response([vm_info(v) for v in views])

    @route(
        "GET", "/vms/jobs/<job_id>", "An asynchronous create's progress", responses={200: JobInfo}
    )
    async def get_job(job_id: str) -> Response:
        job = await context.lifecycle.call(GetJob(caller_of(context), job_id))
        return json_response(
            JobInfo(
                job_id=job.job_id,
                vm_id=job.vm_id,
                status=job.status,
                error=job.error,
                created_at=job.created_at,
                updated_at=job.updated_at,
            )
        )

    @route("GET", "/vms/<vm_id>", "A VM's status", responses={200: VmInfo})
    async def get_vm(vm_id: str) -> Response:
        return json_response(
            vm_info(await context.lifecycle.call(GetVm(caller_of(context), vm_id)))
        )

    @route(
        "GET",
        "/vms/<vm_id>/access",
        "Where to SSH to",
        responses={200: AccessInfo, 202: AccessInfo},
    )
    async def get_access(vm_id: str) -> Response:
        view = await context.lifecycle.call(GetVm(caller_of(context), vm_id))
        if view.status in (VmStatus.CREATING, VmStatus.STARTING):
            port, status = None, 202
        elif view.status is VmStatus.RUNNING:
            port, status = view.ssh_port, 200
        else:
            raise ApiError(409, f"VM {vm_id} is {view.status.value}; SSH works once it runs")
        access = AccessInfo(
            vm_id=view.vm_id,
            status=view.status.value,
            ssh_host=context.ssh_host,
            ssh_port=port,
            multipass_name=view.vm_id,
        )
        return json_response(access, status)

    @route(
        "POST",
        "/vms/<vm_id>/stop",
        "Power a VM off (its port stays reserved)",
        responses={200: VmInfo, 202: VmInfo},
    )
    async def stop_vm(vm_id: str) -> Response:
        return await power(context, StopVm(caller_of(context), vm_id), VmStatus.STOPPED)

    @route(
        "POST", "/vms/<vm_id>/start", "Power a stopped VM on", responses={200: VmInfo, 202: VmInfo}
    )
    async def start_vm(vm_id: str) -> Response:
        return await power(context, StartVm(caller_of(context), vm_id), VmStatus.RUNNING)

    @route(
        "DELETE",
        "/vms/<vm_id>",
        "Delete a VM, its disk and its port",
        responses={200: Deleted, 202: Deleted},
    )
    async def delete_vm(vm_id: str) -> Response:
        caller = caller_of(context)
        await context.lifecycle.call(DeleteVm(caller, vm_id))
        view = await wait_for(context, caller, vm_id, {VmStatus.ERROR}, context.stop_timeout)
        if view is None:
            outcomes.deletes["deleted"] += 1
            return json_response(Deleted(vm_id=vm_id, status="deleted"))
        if view.status is VmStatus.ERROR:
            outcomes.deletes["failed"] += 1
            raise ApiError(500, f"VM {vm_id} could not be deleted: {view.error}")
        outcomes.deletes["accepted"] += 1
        return json_response(Deleted(vm_id=vm_id, status=view.status.value), 202)


def _stream_routes(router: Router, context: ApiContext) -> None:
    route = router.route

    def gate() -> PaymentGate:
        if context.payments is None:
            raise ApiError(400, "streaming payments not enabled on this provider")
        return context.payments

    @route(
        "GET", "/vms/<vm_id>/stream", "The payment stream of a VM", responses={200: StreamStatus}
    )
    async def vm_stream(vm_id: str) -> Response:
        payments = gate()
        view = await context.lifecycle.call(GetVm(caller_of(context), vm_id))
        if view.stream_id is None:
            raise ApiError(404, f"no stream mapped for this VM ({vm_id})")
        reading = await payments.read([view.stream_id])
        status = payments.status(vm_id, view.stream_id, reading, view.resources)
        if status is None:
            raise ApiError(404, f"stream {view.stream_id} does not exist on the chain")
        return json_response(status)

    @route(
        "GET",
        "/payments/streams",
        "The payment streams of the caller's VMs",
        responses={200: list[StreamStatus]},
    )
    async def streams() -> Response:
        payments = gate()
        views = [
            v
            for v in await context.lifecycle.call(ListVms(caller_of(context)))
            if v.stream_id is not None
        ]
        reading = await payments.read([v.stream_id for v in views if v.stream_id is not None])
        found = (
            payments.status(v.vm_id, v.stream_id, reading, v.resources)
            for v in views
            if v.stream_id is not None
        )
        return json_response([s for s in found if s is not None])


def _admin_routes(router: Router, context: ApiContext) -> None:
    route = router.route

    @route(
        "GET",
        "/admin/state",
        "The node's live state (operator only)",
        responses={200: NodeState},
        operator_only=True,
    )
    async def admin_state() -> Response:
        caller = require_operator(context)
        views = await context.lifecycle.call(ListVms(caller))
        report: CapacityReport = await context.resources.call(GetCapacity())
        capacity = CapacityInfo(
            total=resources_body(report.total),
            sellable=resources_body(report.sellable),
            allocated=resources_body(report.allocated),
            free=resources_body(report.free),
            vms=report.vms,
            max_vms=report.max_vms,
            cpu_overcommit=report.cpu_overcommit,
            load=_load_info(report),
            limited=list(report.limited),
        )
        return json_response(
            NodeState(
                version=context.version,
                backend=context.backend_kind,
                capacity=capacity,
                vms=[vm_info(v) for v in views],
            )
        )

    @route(
        "GET",
        "/admin/status",
        "The latest port verification, the price state and the advert's, as"
        " `golem-provider status` shows them (operator only)",
        responses={200: StatusReport},
        operator_only=True,
    )
    async def admin_status() -> Response:
        require_operator(context)
        if context.port_verifier is None:
            raise ApiError(404, "this node does not verify its ports")
        report = (await context.port_verifier.call(GetVerification())).report
        if context.pricing is not None:
            prices = await context.pricing.call(GetPrices())
            report = msgspec.structs.replace(report, pricing=prices)
        if context.observed is not None:
            advert = await context.observed.advertiser.call(GetAdvertState())
            report = msgspec.structs.replace(report, advert=advert)
        report = msgspec.structs.replace(report, vpn=await _vpn_status(context))
        return json_response(report)

    @route(
        "POST",
        "/admin/shutdown",
        "Stop the node gracefully (operator only)",
        responses={202: Health},
        operator_only=True,
    )
    async def admin_shutdown() -> Response:
        require_operator(context)
        log.warning("shutdown requested through the API")
        context.stop.request_stop("api")  # the same graceful path as `golem-provider stop`
        return json_response(Health(status="stopping", version=context.version), 202)


async def _vpn_status(context: ApiContext) -> VpnStatus:
    vpn = context.vpn_router
    stats = await vpn.call(GetVpnStats())
    networks = await vpn.call(ListNetworks(Caller(operator=True)))
    membership = await vpn.call(GetMembership())
    return vpn_status(
        networks=len(networks),
        vm_addresses=len(membership.rows),
        endpoints=stats.endpoints,
        totals=stats.totals,
        drops=stats.drops,
        links=stats.links,
    )


def _load_info(report: CapacityReport) -> HostLoadInfo | None:
    if report.load is None or report.thresholds is None:
        return None
    load, thresholds = report.load, report.thresholds
    return HostLoadInfo(
        cpu_percent=round(load.cpu_percent, 1),
        memory_percent=round(load.memory_percent, 1),
        storage_percent=round(load.storage_percent, 1),
        cpu_threshold=thresholds.cpu,
        memory_threshold=thresholds.memory,
        storage_threshold=thresholds.storage,
    )


def require_operator(context: ApiContext) -> Caller:
    caller = caller_of(context)
    if not caller.operator:
        raise ApiError(401, "operator credentials required")
    return caller


def create_app(context: ApiContext) -> QuartTrio:
    app = QuartTrio("golem_actor.api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    outcomes = Outcomes()  # this app's own: apps (tests) never share counts
    router = build_router(context, outcomes)
    for route in router.routes:
        app.add_url_rule(route.path, route.handler.__name__, route.handler, methods=[route.method])
    document = _encoder.encode(
        openapi_document(router, title="golem-actor provider node", version=context.version)
    )

    async def openapi() -> Response:
        return Response(document, content_type="application/json")

    app.add_url_rule(f"{API_PREFIX}/openapi.json", "openapi", openapi, methods=["GET"])

    async def metrics() -> Response:
        caller = require_operator(context)
        vms = await context.lifecycle.call(ListVms(caller))
        snapshot = await observe(vms, context.observed, context.payments)
        return Response(render(snapshot, outcomes), content_type=CONTENT_TYPE)

    # At the root, where Prometheus looks by default; operator only, like /admin.
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    register_net_api(app, context)
    register_link_route(app, context, outcomes.link_refusals)

    @app.before_request
    async def bind_request() -> None:
        # Read the whole body before any answer: hypercorn can lose the next request on a
        # keep-alive connection when a response goes out while the body is still arriving
        # (seen under fuzzing: the next request never reached the app). Bodies are small.
        await request.get_data()
        structlog.contextvars.bind_contextvars(
            request_method=request.method,
            request_path=request.path,
            request_started=time.perf_counter(),
        )

    @app.after_request
    async def cors_and_log(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        started = structlog.contextvars.get_contextvars().get("request_started", math.nan)
        log.info(
            "request",
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return json_response(ErrorBody(detail=error.description or error.name), error.code or 500)

    @app.errorhandler(Exception)
    async def failure(error: Exception) -> Response:
        answer = translate(error)
        if answer is None:
            log.error("request failed", exc_info=error)
            return json_response(ErrorBody(detail="internal error"), 500)
        return json_response(ErrorBody(detail=answer.detail), answer.status)

    return app
