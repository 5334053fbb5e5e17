"""The typed configuration: one pydantic model for every business rule and setting."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from configs.contracts import CHANNELS, CREDIT_GRADES, SEGMENTS, VALUE_TIERS

# The vocabularies are defined once, in configs.contracts; the config types follow them.
Segment = Literal[SEGMENTS]  # type: ignore[valid-type]
ValueTier = Literal[VALUE_TIERS]  # type: ignore[valid-type]
CreditGrade = Literal[CREDIT_GRADES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatorConfig(Section):
    customers: int = Field(5_000, ge=10)
    months: int = Field(12, ge=1, le=120)
    start_date: date = date(2025, 1, 1)
    file_format: Literal["parquet", "csv"] = "parquet"
    defect_rate: float = Field(0.0, ge=0.0, le=0.5)
    monthly_churn_target: float = Field(0.02, gt=0.0, lt=0.2)
    serious_arrears_target: float = Field(0.04, gt=0.0, lt=0.3)
    segment_mix: dict[Segment, float] = {
        "individual": 0.62,
        "family": 0.25,
        "enterprise": 0.10,
        "government": 0.03,
    }
    postpaid_share: float = Field(0.6, ge=0.0, le=1.0)
    drift_month: int | None = Field(
        None, description="Month index (1-based) from which a competitor launch raises churn."
    )
    drift_strength: float = Field(1.8, ge=1.0, le=10.0)


class IngestConfig(Section):
    source: Path | None = Field(
        None, description="Landing folder `churn ingest` reads; default <home>/landing."
    )
    max_quarantine_share: float = Field(
        0.5, ge=0.0, le=1.0, description="A file with more bad rows than this is rejected whole."
    )


class TierCutoffs(Section):
    """Monthly spend (currency units, average over the window) at or above which a tier applies."""

    diamond: float = 120.0
    gold: float = 70.0
    silver: float = 35.0

    @model_validator(mode="after")
    def _ordered(self) -> TierCutoffs:
        if not (self.diamond > self.gold > self.silver >= 0):
            raise ValueError("tier cut-offs must satisfy diamond > gold > silver >= 0")
        return self


class LifecycleRules(Section):
    development_max_tenure_days: int = 90
    growth_max_tenure_days: int = 365
    growth_min_spend_trend: float = Field(
        0.05, description="Spend trend (last 30d vs prior 60d, relative) above which 'growth'."
    )
    decline_max_spend_trend: float = Field(
        -0.15, description="Spend or usage trend below which a customer is in 'decline'."
    )


class FeaturesConfig(Section):
    windows_days: list[int] = [7, 30, 90, 180]
    horizons_days: list[int] = [30, 90]
    history_months: int = Field(6, ge=1, le=60)
    serious_arrears_days: int = Field(60, ge=1)
    tier_window_days: int = Field(90, ge=30)
    tiers: TierCutoffs = TierCutoffs()
    lifecycle: LifecycleRules = LifecycleRules()


class SearchSpace(Section):
    num_leaves: tuple[int, int] = (15, 127)
    learning_rate: tuple[float, float] = (0.02, 0.2)
    min_child_samples: tuple[int, int] = (20, 200)
    feature_fraction: tuple[float, float] = (0.5, 1.0)
    bagging_fraction: tuple[float, float] = (0.5, 1.0)
    lambda_l2: tuple[float, float] = (1e-3, 10.0)
    # (0, 0) leaves depth unbounded; bounded depth keeps TreeSHAP reason codes cheap.
    max_depth: tuple[int, int] = (0, 0)


class EmpcConfig(Section):
    clv: float = 200.0
    incentive_cost: float = 10.0
    contact_cost: float = 1.0
    alpha: float = 6.0
    beta: float = 14.0


class PromotionConfig(Section):
    primary_metric: Literal["pr_auc", "roc_auc", "empc"] = "pr_auc"
    margin: float = Field(0.0, ge=0.0, description="Challenger must beat champion by this much.")
    brier_tolerance: float = Field(0.005, ge=0.0)
    # A quality floor that holds even without a champion: a model no better than chance must
    # never rank customers for a list.
    min_roc_auc: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Out-of-time ROC-AUC a model needs to be promoted (0 turns the floor off).",
    )
    min_pr_auc_lift: float = Field(
        1.5,
        ge=0.0,
        description="Out-of-time PR-AUC must reach this multiple of the validation month's "
        "positive rate (the PR-AUC of a random ranking).",
    )


class SnapshotConfig(Section):
    """`churn snapshot`: LightGBM blended with a logistic regression, weight set by inner CV."""

    blend: bool = True
    blend_folds: int = Field(5, ge=2, le=10)
    linear_c: list[float] = [0.03, 0.1, 0.3, 1.0]
    family_sums: bool = True
    # Ratios of parallel families' totals (paid ÷ billed): +0.003 ROC-AUC on a Taiwan fold.
    family_ratios: bool = True
    # Each member's share of its family total: measured no help (Taiwan) or a loss (BigML, 0.930
    # → 0.926 over 3 seeds), so off unless a table's families are shares by nature.
    family_shares: bool = False
    # An explainable boosting member (models.additive: bagged greedy boosting of single features
    # plus screened pairs) joins the blend on training parts up to `additive_max_rows` rows;
    # the inner CV sets its weight with the others'. German credit (800 training rows): 0.7874
    # → 0.7896. BigML (2,666): the inner CV gave it all the weight (+0.007 out of fold) and the
    # fixed test file lost 0.0085, so the default stops short of tables that size.
    additive: bool = True
    additive_max_rows: int = Field(2000, ge=0)
    # The EBM's own default (interpret 0.7.8): on German the member alone gives 0.7917 with
    # 14 bags against 0.7892 with 8 (same 15 folds), at 1.6× the time.
    additive_bags: int = Field(14, ge=1, le=64)
    # Repeated stratified CV: `repeats` × `folds`, reported as mean and sd over all folds.
    folds: int = Field(5, ge=2, le=10)
    repeats: int = Field(3, ge=1, le=10)
    # Text columns with this many levels or more: LightGBM's own categories, out-of-fold target
    # means or level counts, whichever wins an inner CV on each fold's training part.
    encode_high_cardinality: bool = True
    high_cardinality_levels: int = Field(30, ge=3)
    # Inner ROC-AUC an encoding must gain over LightGBM's own categories to replace them.
    encoding_margin: float = Field(0.005, ge=0.0)
    # Outer folds run side by side in this many processes (0: one per core), each LightGBM on
    # one thread: two single-threaded fits keep two cores busy where one two-threaded fit
    # waits on its slower thread. Tables under `parallel_min_rows` run in-process (starting
    # workers costs more than it saves).
    workers: int = Field(0, ge=0)
    parallel_min_rows: int = Field(5000, ge=0)
    # Small tables are never bulk-scored: a wider search than the operator models'.
    search_space: SearchSpace = SearchSpace()
    num_boost_round: int = Field(1000, ge=10)


class ModelsConfig(Section):
    horizon_days: int = 90
    min_train_snapshots: int = Field(
        1,
        ge=1,
        description="Complete snapshots with matured labels, outside the validation month, "
        "that training needs (it refuses with fewer).",
    )
    trials: int = Field(20, ge=1)
    warm_start: bool = Field(
        True, description="Start tuning from the champion's parameters (same horizon)."
    )
    warm_start_trials: int = Field(
        6, ge=1, description="Trials when warm-started (an explicit --trials wins)."
    )
    timeout_seconds: int | None = None
    # Compact models (every tree is paid for at scoring time); snapshot mode searches wider.
    num_boost_round: int = Field(300, ge=10)
    early_stopping_rounds: int = Field(30, ge=5)
    search_space: SearchSpace = SearchSpace(
        num_leaves=(7, 31), learning_rate=(0.08, 0.3), max_depth=(4, 6)
    )
    calibration: Literal["auto", "isotonic", "platt", "none"] = "auto"
    empc: EmpcConfig = EmpcConfig()
    promotion: PromotionConfig = PromotionConfig()
    reason_codes: int = Field(3, ge=1, le=10)
    # Above these sizes training reads a stable hash sample of customers (memory stays bounded).
    max_train_rows: int = Field(1_000_000, ge=1000)
    max_valid_rows: int = Field(500_000, ge=1000)
    snapshot: SnapshotConfig = SnapshotConfig()


class CreditLimitRule(Section):
    """Credit limit = multiple of average monthly spend, by grade, capped."""

    spend_multiple: dict[CreditGrade, float] = {"A": 3.0, "B": 2.0, "C": 1.5, "D": 1.0, "E": 0.0}
    floor: float = 0.0
    cap: float = 2000.0


class ScoringConfig(Section):
    # PD upper bounds for grades A..D; anything above the last bound is E.
    credit_grade_cutoffs: list[float] = [0.02, 0.05, 0.10, 0.20]
    credit_limit: CreditLimitRule = CreditLimitRule()
    # Reason codes cost more than scores: explain the riskier deciles only, where retention acts.
    reason_code_min_decile: int = Field(8, ge=1, le=10)
    # path: path attribution (about the cost of a prediction); treeshap: exact, far slower.
    reason_method: Literal["path", "treeshap"] = "path"

    @field_validator("credit_grade_cutoffs")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if len(v) != 4 or any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("credit_grade_cutoffs needs 4 increasing PD bounds (A..D)")
        return v


class Offer(Section):
    name: str
    cost: float = Field(ge=0.0)
    accept_rate: float = Field(gt=0.0, le=1.0)
    segments: list[Segment] = list(SEGMENTS)
    tiers: list[ValueTier] = ["diamond", "gold", "silver", "basic"]
    credit_grades: list[CreditGrade] = ["A", "B", "C", "D", "E"]
    reasons: list[str] = []
    device_subsidy: bool = False
    extends_credit: bool = False


class ChannelConfig(Section):
    cost: float = Field(ge=0.0)
    capacity: int = Field(ge=0)
    reach: float = Field(
        1.0, gt=0.0, le=1.0, description="Share of contacts that get through to the customer."
    )
    persuasion: float = Field(
        1.0, gt=0.0, le=2.0, description="Acceptance multiplier once reached (1 = a call)."
    )
    segments: list[Segment] = ["individual", "family", "enterprise", "government"]


class ContactPolicy(Section):
    cooldown_days: int = Field(30, ge=0)
    max_contacts: int = Field(2, ge=0)
    period_days: int = Field(90, ge=1)


class UpliftConfig(Section):
    """Uplift model from evaluated campaigns; the policy ranks by it once it is champion."""

    enabled: bool = True
    horizon_days: int = Field(60, ge=7, le=365, description="Churn window after contact.")
    holdout_share: float = Field(0.25, gt=0.0, lt=0.9)
    min_list_rows: int = Field(200, ge=20, description="Campaign rows needed before training.")
    min_qini: float = Field(
        0.0, description="Held-out Qini coefficient a model needs to become champion."
    )
    min_gain_se: float = Field(
        2.0,
        ge=0.0,
        description="Standard errors (bootstrap over held-out customers) by which its held-out "
        "Qini must beat ranking by risk to become champion.",
    )
    learner: Literal[
        "auto", "relative", "two_model", "solo", "class_transformation", "x_learner", "dr_learner"
    ] = Field(
        "auto", description="Uplift learner; auto = best inner-CV Qini on training customers."
    )
    reference_channel: Channel = Field(
        "outbound_call",
        description="The channel learning campaigns use, so uplift estimates refer to it; the "
        "policy scales them to other channels by reach × persuasion.",
    )


class RealisationConfig(Section):
    """Calibrate the prior save estimate per offer with evaluated campaigns' control groups."""

    enabled: bool = True
    window_days: Literal[30, 100] = Field(
        100, description="Evaluation window compared with predicted saves."
    )
    prior_sd: float = Field(
        0.5,
        gt=0.0,
        description="Spread of belief in the prior (factor 1): a campaign moves the factor by "
        "its precision against this, so results within their noise change little.",
    )
    max_factor: float = Field(
        2.0, ge=1.0, description="Largest factor campaigns may set (the prior times this)."
    )


class TakeupConfig(Section):
    """Calibrate acceptance per offer × channel from campaign responses (accepted / contacted)."""

    enabled: bool = True
    prior_strength: float = Field(
        20.0,
        ge=0.0,
        description="Predicted take-ups' worth of belief in the configured acceptance (factor 1).",
    )
    model: bool = Field(
        True, description="Learn a per-customer take-up model from played-out contacts."
    )
    min_contacts: int = Field(1000, ge=50, description="Contacts the take-up model needs.")
    min_accepted: int = Field(100, ge=10, description="Take-ups the take-up model needs.")
    folds: int = Field(3, ge=2, le=10, description="Customer-grouped folds of its gate.")
    min_gain_se: float = Field(
        2.0,
        ge=0.0,
        description="Out-of-fold log-loss gain over the calibrated acceptance it needs, in "
        "standard errors of the paired per-customer difference.",
    )


class ResponsePrior(Section):
    """What a contact does besides a take-up, before campaigns have measured it (field evidence)."""

    save_given_accept: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Share of a customer's churn risk that a taken-up offer removes.",
    )
    backfire_rate: float = Field(
        0.045, ge=0.0, lt=1.0, description="Share of reached customers who resent the contact."
    )
    backfire_churn_increase: float = Field(
        1.0,
        ge=0.0,
        description="Added churn risk of a customer who resents the contact, relative to their "
        "own (1 = doubled).",
    )


class CampaignStatistics(Section):
    """How campaigns are sized to learn and judged: one α for the power calculation and the test."""

    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Two-sided test level.")
    power: float = Field(0.8, gt=0.0, lt=1.0)
    detectable_effect: float = Field(
        0.0076,
        gt=0.0,
        lt=1.0,
        description="Absolute churn reduction a campaign should detect (0.0076 = 0.76 points).",
    )
    min_control: int = Field(
        30, ge=1, description="Below this many control customers: 'too few controls to tell'."
    )


class RetentionConfig(Section):
    value_horizon_months: int = Field(12, ge=1)
    margin_rate: float = Field(
        0.35, gt=0.0, le=1.0, description="Share of spend that is margin: value saved = margin."
    )
    budget: float = Field(20_000.0, ge=0.0)
    # expected: contact + acceptance × offer cost (spend may exceed the budget when more accept
    # than predicted); worst_case: contact + full offer cost (spend can never exceed it).
    budget_basis: Literal["expected", "worst_case"] = "expected"
    control_share: float = Field(0.10, ge=0.0, lt=1.0)
    min_expected_value: float = 1.0
    contact_within_days: int = Field(14, ge=1)
    reason_match_boost: float = Field(
        1.5,
        ge=1.0,
        description="Acceptance multiplier when an offer addresses the customer's reasons.",
    )
    max_accept_probability: float = Field(
        0.95, gt=0.0, le=1.0, description="Cap on a boosted acceptance probability."
    )
    evaluation_windows_days: list[int] = Field(
        [30, 100], min_length=1, description="Churn windows after contact that evaluation reports."
    )
    weak_grades: list[CreditGrade] = ["D", "E"]
    collections_max_tier: ValueTier = "silver"
    max_days_past_due: int = Field(
        30,
        ge=1,
        description="Customers this many days or more behind on payment go to collections, not "
        "retention: the churn label counts disconnection for non-payment, no offer prevents it.",
    )
    # The catalogue lives in default.yaml only: no second list of offers or channels here.
    offers: list[Offer] = Field(min_length=1)
    channels: dict[Channel, ChannelConfig] = Field(min_length=1)
    contact_policy: ContactPolicy = ContactPolicy()
    campaigns: CampaignStatistics = CampaignStatistics()
    uplift: UpliftConfig = UpliftConfig()
    realisation: RealisationConfig = RealisationConfig()
    takeup: TakeupConfig = TakeupConfig()
    response_prior: ResponsePrior = ResponsePrior()


class DriftGate(Section):
    drifted_share_warn: float = 0.2
    drifted_share_retrain: float = 0.4
    prediction_drift_retrain: float = Field(
        0.35, description="Wasserstein distance (normed) of scores above which retrain."
    )
    auc_drop_retrain: float = 0.05


class CalibrationWatchConfig(Section):
    """Calibration in the large before each list: mean churn score against the trailing realised
    rate and the champion's validation-month mean score."""

    max_ratio: float = Field(
        1.5, gt=1.0, description="Either yardstick this many times apart (either way) trips it."
    )
    action: Literal["hold", "recalibrate"] = Field(
        "hold",
        description="hold: store the list for review, export nothing to marketing; recalibrate: "
        "shift every log-odds so the mean score equals the trailing rate (ranking unchanged).",
    )
    trailing_snapshots: int = Field(
        3, ge=1, description="Latest complete snapshots with matured labels that give the rate."
    )


class MonitoringConfig(Section):
    gate: DriftGate = DriftGate()
    calibration: CalibrationWatchConfig = CalibrationWatchConfig()
    max_reference_rows: int = 20_000
    # The comparison is as precise as its smaller side: a 1M-customer month compared in full
    # took five minutes of a cycle (Evidently over every row) for no more certainty.
    max_current_rows: int = Field(100_000, ge=1000)
    # Evidently picks its test by sample size (chi-square / K-S up to 1,000 rows, distances
    # above), so a verdict would change method with the base; chi-square also divides by zero
    # when a count feature takes a value the reference never had. One method at every size.
    drift_method_numeric: str = Field(
        "wasserstein", description="Evidently stattest for numeric features (normed distance)."
    )
    drift_method_categorical: str = Field(
        "jensenshannon", description="Evidently stattest for categorical features."
    )
    reference: Literal["validation", "training"] = Field(
        "validation",
        description="Champion's out-of-time validation snapshot (out-of-sample predictions) "
        "or its training snapshots.",
    )
    exclude_features: list[str] = Field(
        default_factory=lambda: [
            "tenure_days",
            "days_to_contract_end",
            "handset_age_months",
            "days_since_*",
        ],
        description="Features that move with the calendar by construction (glob patterns); "
        "left out of the drifted share so ageing alone never triggers a retrain.",
    )


class Schedules(Section):
    ingest: str = "0 2 * * *"
    cycle: str = "0 4 1 * *"
    evaluate: str = "0 6 15 * *"


class OrchestrationConfig(Section):
    schedules: Schedules = Schedules()
    lock_timeout_seconds: int = Field(0, ge=0)
    retrain: Literal["every_cycle", "on_drift"] = "every_cycle"
    history_months: int = Field(
        8, ge=1, le=60, description="Monthly as-of snapshots kept fresh by each cycle."
    )


class DemoConfig(Section):
    """Size of the one-command demo: small enough for a few minutes on 2 cores."""

    customers: int = Field(3000, ge=200)
    initial_months: int = Field(12, ge=6)
    cycles: int = Field(4, ge=1)
    trials: int = Field(4, ge=1)
    drift_month: int | None = Field(15, description="Simulator month a competitor launches.")


class TrackingConfig(Section):
    tracking_uri: str | None = Field(None, description="Default: sqlite under <home>/mlflow.")
    experiment: str = "churn-retention"


class SecurityConfig(Section):
    mask_salt: str | None = Field(
        None, description="Salt for masked customer keys; set CHURN_SECURITY__MASK_SALT."
    )
    # Secrets: printed and hashed as '**********', so `config show` and config hashes hide them.
    dashboard_password: SecretStr | None = Field(
        None,
        description="Cockpit password of the data team (may look customers up by id); "
        "set CHURN_SECURITY__DASHBOARD_PASSWORD. Required to bind beyond localhost.",
    )
    marketing_password: SecretStr | None = Field(
        None,
        description="Cockpit password of marketing (masked keys only); "
        "set CHURN_SECURITY__MARKETING_PASSWORD.",
    )

    @field_validator("dashboard_password", "marketing_password", mode="before")
    @classmethod
    def _password_as_text(cls, value: object) -> object:
        # Environment values are read as YAML scalars: a password of digits must stay text.
        if isinstance(value, bool | int | float):
            return str(value).lower() if isinstance(value, bool) else str(value)
        return value


class ExecutorConfig(Section):
    kind: Literal["local", "dask"] = "local"
    address: str | None = Field(None, description="Dask scheduler; None starts a LocalCluster.")
    workers: int = Field(2, ge=1)
    partitions: int = Field(4, ge=1)
    # With kind=dask, the final LightGBM fit runs on the cluster via lightgbm.dask.
    dask_training: bool = True


class WarehouseConfig(Section):
    # DuckDB spills to disk beyond this, so a stage's memory stays bounded at any size
    # (its default is 80% of the machine's RAM).
    memory_limit_mb: int = Field(4096, ge=256)
    # Larger customer bases are featurised in customer-hash partitions of about this size, one
    # after another: some of DuckDB's aggregate states live outside its spillable memory.
    partition_customers: int = Field(500_000, ge=100)


class Settings(Section):
    """The whole resolved configuration."""

    home: Path = Path(".churn")
    seed: int = 42
    as_of: date | None = None
    simulator: SimulatorConfig = SimulatorConfig()
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    models: ModelsConfig = ModelsConfig()
    scoring: ScoringConfig = ScoringConfig()
    retention: RetentionConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    tracking: TrackingConfig = TrackingConfig()
    security: SecurityConfig = SecurityConfig()
    executor: ExecutorConfig = ExecutorConfig()
    warehouse: WarehouseConfig = WarehouseConfig()
    demo: DemoConfig = DemoConfig()
