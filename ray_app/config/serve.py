"""The Serve app, its replicas and the recommendation rules (``serve:``, ``recommend:``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from ray_app.config.base import Port, Resources, _Section


class ReplicaSettings(_Section):
    """Autoscaling and resources of one Serve deployment."""

    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: float = Field(gt=0)
    max_ongoing_requests: int = Field(ge=1)
    # requests waiting for a replica beyond which callers are told 503 at once (-1: no limit, Serve's default)
    max_queued_requests: int = Field(ge=-1)
    # how long a caller waits for this deployment's answer before it answers 504 (null: no limit)
    request_timeout_s: float | None = Field(default=None, gt=0)
    num_cpus: float = Field(ge=0)
    num_gpus: float = Field(default=0, ge=0)
    # custom Ray resources each replica needs (what places it on a node type, e.g. {"worker": 1})
    resources: Resources = Field(default_factory=dict)
    # how long the load must stay above (below) the target before Serve adds (removes) a replica; null: Serve's 30/600
    upscale_delay_s: float | None = Field(default=None, ge=0)
    downscale_delay_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _order(self) -> ReplicaSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        if self.max_ongoing_requests < self.target_ongoing_requests:
            raise ValueError("max_ongoing_requests must be >= target_ongoing_requests")
        if self.max_queued_requests == 0:
            raise ValueError("max_queued_requests must be at least 1, or -1 for no limit")
        return self

    def deployment_options(self) -> dict[str, Any]:
        autoscaling: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
        }
        for name in ("upscale_delay_s", "downscale_delay_s"):
            if getattr(self, name) is not None:
                autoscaling[name] = getattr(self, name)
        actor: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            actor["resources"] = dict(self.resources)
        return {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "autoscaling_config": autoscaling,
            "ray_actor_options": actor,
        }


class SignalRules(_Section):
    """How the recommendation's signal and sentiment follow from the facts (docs/serve.md, "Recommendations")."""

    move_threshold_pct: float = Field(gt=0)
    trend_threshold_pct: float = Field(gt=0)
    require_beats_naive: bool


Attempt = Literal["free", "plain", "slots"]
DEFAULT_ATTEMPTS: tuple[Attempt, ...] = ("plain", "slots")


class RecommendSettings(_Section):
    """The Recommender's language model (``from_pretrained(model)``), its decoding and its signal rules."""

    model: str = Field(min_length=1)
    gguf_file: str | None = None
    offline_fallback: bool = True
    max_new_tokens: int = Field(ge=1, le=512)
    no_repeat_ngram_size: int = Field(ge=0)
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=2.0)
    seed: int
    max_batch_size: int = Field(ge=1, le=256)
    batch_wait_timeout_s: float = Field(ge=0, le=10)
    # the model's attempts at a text every claim of which the facts support, tightest last (serve_deployments/
    # checked_text.py: free, plain, slots); none passing within text_budget_s -> the template sentence from the facts;
    # [] -> template only. free (unconstrained) is off by default: bench/recommend.py measured 0 of its texts pass
    attempts: list[Attempt] = Field(default_factory=lambda: list(DEFAULT_ATTEMPTS))
    text_budget_s: float = Field(default=30.0, gt=0, le=600)
    rules: SignalRules


class ServeSettings(_Section):
    """The Ray Serve application: a FastAPI ingress in front of the Forecast and Recommender deployments."""

    app_name: str = Field(min_length=1)
    route_prefix: str = Field(pattern=r"^/")
    http_host: str
    http_port: Port
    # where Serve runs its HTTP proxies: every node with a replica (Serve's default), or the head only (several nodes
    # on one machine cannot all bind http_port)
    proxy_location: Literal["EveryNode", "HeadOnly"] = "EveryNode"
    cache_ttl_s: float = Field(ge=0)
    # the API key writes always need, and every request needs when http_host is beyond the loopback (null: one is
    # made on first use in state_dir/serve/api-key); secret: prefer RAY_APP_SERVE__API_KEY
    api_key: SecretStr | None = None
    max_symbols_per_request: int = Field(default=32, ge=1, le=1000)
    forecast: ReplicaSettings
    recommender: ReplicaSettings
    ingress: ReplicaSettings

    @property
    def url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}{self.route_prefix.rstrip('/')}"
