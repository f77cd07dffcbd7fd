"""All settings of the service, in one place.

Environment variables (prefix ``RECOUVREMENT_``, nested with ``__``) carry the deployment
settings and the secrets, and win over an optional YAML file (``RECOUVREMENT_CONFIG_FILE``)
that carries the Redmine names, the routing and the procedure's amounts and delays. Every
amount has the seed's value as its default (see ``../shared/domain/procedure.md``).
"""

from __future__ import annotations

import os
from datetime import datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.calendar import Zone

CONFIG_FILE_ENV = "RECOUVREMENT_CONFIG_FILE"


class YamlFileSource(PydanticBaseSettingsSource):
    """The YAML file named by RECOUVREMENT_CONFIG_FILE; below the environment in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"fichier de configuration illisible {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"fichier de configuration {path}: un dictionnaire YAML est attendu")
        return data


class TrackerNames(BaseModel):
    """Redmine trackers, by role in the procedure."""

    mandate_register: str = "Registre des mandats"
    litigation: str = "Contentieux"
    funds_request: str = "Demande de fonds"
    assignation: str = "Assignation"
    injunction: str = "Injonction de payer"
    execution: str = "Exécution"
    eviction: str = "Expulsion"
    supplier_payment: str = "Paiement fournisseur"
    mandate_loss: str = "Perte de mandat"
    fee_cancellation: str = "Annulation frais"
    debt_writeoff: str = "Annulation dette"
    prevention_reminder: str = "Relance impayés"  # P-4, P-6: a phone follow-up
    prevention_file: str = "Fichier de relance"  # P-7 … P-10: a phase's list of tenants still unpaid
    task: str = "Tâche gestionnaire"


class FieldNames(BaseModel):
    """Issue custom fields, by role in the procedure."""

    mandate_number: str = "N° mandat"
    tenant_ref: str = "Réf. locataire"
    owner_ref: str = "Réf. propriétaire"
    debtors: str = "Débiteurs"
    tenant_in_premises: str = "Locataire dans les lieux"
    lease_type: str = "Type de bail"
    debt_amount: str = "Montant de la dette"
    rent_only_debt: str = "Dette de loyers uniquement"
    gli_lot: str = "Lot sous GLI"
    owner_account: str = "Compte propriétaire"
    last_unpaid_date: str = "Date du dernier impayé"
    starred_tenant: str = "Locataire étoilé"
    owner_written_refusal: str = "Refus écrit du propriétaire"
    requested_amount: str = "Montant demandé"
    operation_key: str = "Clé d'opération"
    # Dates that start or stop a deadline (issue 3), and where a deadline is shown.
    provision_request_date: str = "Date de demande de provision"  # C-13
    funds_received_date: str = "Date de réception des fonds"  # C-14
    forfeiture_date: str = "Déchéance de garantie le"  # C-14, read by the write-off scan (C-31)
    service_date: str = "Date de signification"  # C-12
    judgment_date: str = "Date du jugement"  # C-18
    judgment_service_date: str = "Jugement signifié le"  # C-18
    original_received_date: str = "Original reçu le"  # C-19
    deadline: str = "Échéance"
    deadline_reason: str = "Échéance – motif"
    # Issue 4: after the act (bailiff file, title, judgment, enforcement, invoices).
    file_sent_date: str = "Dossier transmis le"  # C-8
    act_unpaid: str = "Acte resté impayé"  # C-11
    injunction_contested: str = "Injonction contestée"  # C-23
    judgment_outcome: str = "Issue du jugement"  # C-20, C-21
    eviction_ordered: str = "Expulsion ordonnée"  # C-27
    eviction_order_date: str = "Commandement quitter le"  # C-27, L-15
    tenant_stays: str = "Maintien dans les lieux"  # C-27
    tenant_left_date: str = "Départ du locataire le"  # C-27 → 20 06 02
    estimated_cost: str = "Coût estimé"  # every ticket the service opens with a cost
    expense_kind: str = "Nature de la dépense"  # C-29
    gli_indemnified: str = "Propriétaire indemnisé GLI"  # C-30
    # Issue 5: fee cancellations (C-33 … C-37) and debt write-offs (C-31, C-32).
    justification: str = "Justification"  # C-34
    decision: str = "Décision"  # C-36, C-37
    decision_reason: str = "Motif de la décision"  # C-37
    dg_escalation: str = "Escalade DG"  # C-37
    overdue: str = "Hors délai"  # C-35: no decision within the delay
    owner_informed_date: str = "Propriétaire informé le"  # C-32
    writeoff_date: str = "Annulation passée le"  # C-32
    # Issue 6: prevention (P-1 … P-13), on the Relance impayés tickets.
    phone: str = "Téléphone"
    balance: str = "Solde dû"
    unpaid_terms: str = "Termes impayés"  # P-1
    reminder_phase: str = "Phase de relance"  # P-4, P-6, P-12
    debtor_kind: str = "Type de débiteur"  # P-2
    plan_eligible: str = "Plan d'apurement éligible"  # P-5
    plan_proposal: str = "Échéancier proposé"  # P-5
    plan_accepted_date: str = "Plan accepté le"  # P-5
    plan_months: str = "Mensualités du plan"  # P-5
    # Issue 7: the legal watch (L-0 … L-16), on the litigation ticket unless said.
    legal_check: str = "Contrôle légal"  # kept up to date by the service
    legal_override: str = "Dérogation légale"  # lifts a gate (also on Expulsion)
    calendar_zone: str = "Zone calendrier"  # L-7: the property's zone
    lease_date: str = "Date du bail"  # L-1
    clause_delay: str = "Délai de la clause"  # L-1, L-2: "2 mois", "6 semaines"…
    guarantor_served_date: str = "Caution signifiée le"  # L-5
    hearing_date: str = "Date d'audience"  # L-3
    prefect_notice_date: str = "Préfet notifié le"  # L-3
    legal_person_landlord: str = "Bailleur personne morale"  # L-4
    ccapex_date: str = "CCAPEX saisie le"  # L-4
    monthly_rent: str = "Loyer charges comprises"  # L-8
    default_judgment: str = "Jugement par défaut"  # L-12, on Assignation
    eviction_planned_date: str = "Expulsion prévue le"  # L-15, on Expulsion


class StatusNames(BaseModel):
    new: str = "Nouveau"
    in_progress: str = "En cours"
    closed: str = "Fermé"


class ListValues(BaseModel):
    """Values of the list custom fields, as users pick them."""

    owner_account_credit: str = "Créditeur"
    owner_account_debit: str = "Débiteur"
    lease_residential: str = "Habitation"
    lease_commercial: str = "Commercial"
    judgment_favourable: str = "Favorable"
    judgment_unfavourable: str = "Défavorable"
    expense_fees: str = "Honoraires"
    expense_other: str = "Autre"
    decision_accepted: str = "Accordée"
    decision_refused: str = "Refusée"
    kind_new_entrant: str = "Nouvel entrant"  # P-2
    kind_accidental: str = "Accidentel"
    kind_recidivist: str = "Récidiviste"
    zones: dict[str, Zone] = {  # L-7: `Zone calendrier` values
        "Métropole": Zone.metropole, "Moselle (57)": Zone.moselle, "Bas-Rhin, Haut-Rhin (67, 68)": Zone.alsace,
        "Guadeloupe (971)": Zone.guadeloupe, "Martinique (972)": Zone.martinique, "Guyane (973)": Zone.guyane,
        "La Réunion (974)": Zone.reunion, "Mayotte (976)": Zone.mayotte,
    }


class Routing(BaseModel):
    """Who receives which ticket: Redmine group or user names (login or group name)."""

    litigation_group: str = "Contentieux"
    back_office_group: str = "Back office"
    accounting_group: str = "Comptabilité"
    management_group: str = "DG"
    litigation_manager: str = "Responsable contentieux"  # told of a late decision (C-35)
    prevention_group: str = "Prévention des impayés"  # head-office agents (P-6, P-11)
    cesf_group: str = "CESF"  # P-9
    social_litigation_group: str = "Contentieux et suivi social"  # P-10 … P-12
    sector_advisers: dict[str, str] = {}  # P-13: sector → conseillère (user name), named on the tickets
    agencies: list[str] = ["Agence Centre", "Agence Nord", "Agence Sud"]


class Procedure(BaseModel):
    """Amounts and delays of the procedure; defaults are the seed's figures."""

    act_cost_per_party_eur: Decimal = Decimal("300")  # C-5
    assignation_cost_eur: Decimal = Decimal("1500")  # C-13
    injunction_cost_eur: Decimal = Decimal("400")  # C-24
    injunction_ceiling_eur: Decimal = Decimal("4000")  # C-22
    execution_cost_eur: Decimal = Decimal("400")  # C-26
    service_fees_note: str = "+ frais de signification du commissaire de justice"  # C-24
    eviction_order_cost_eur: Decimal = Decimal("300")  # C-27
    public_force_cost_eur: Decimal = Decimal("3000")  # C-27


class Deadlines(BaseModel):
    """Delays of the procedure (seed's values) and when deadlines fire."""

    provision_days: int = 45  # C-14: D+45
    lawyer_months_residential: int = 2  # C-12
    lawyer_months_commercial: int = 1  # C-12
    lawyer_reminder_days_before: int = 7  # C-12
    judgment_chase_days: int = 15  # C-18
    judgment_original_days: int = 15  # C-19
    execution_review_months: int = 1  # C-26
    decision_working_days: int = 8  # C-35, counted in the office's calendar zone
    writeoff_after_months: int = 36  # C-31: strictly more than 3 years since the last unpaid rent
    writeoff_notice_days: int = 15  # C-32: owner informed on D → entries passed from D+15
    office_zone: Zone = Zone.metropole  # where the teams work: their public holidays (C-35)
    office_hour: time = time(8, 0)  # due instants fire at this hour, Europe/Paris
    late_after_minutes: int = 60  # fired later than this after its due instant: "en retard"
    whit_monday_is_holiday: bool = True
    tick_interval_seconds: int = 60
    lease_seconds: int = 300


class LedgerColumns(BaseModel):
    """Columns of the arrears ledger exported by the rent-accounting system: one row per
    unpaid term (the tenant's columns repeated)."""

    tenant_ref: str = "ref_locataire"
    name: str = "nom"
    lot: str = "lot"
    agency: str = "agence"
    sector: str = "secteur"
    lease_start: str = "debut_bail"  # JJ/MM/AAAA or AAAA-MM-JJ
    phone: str = "telephone"
    mandate_number: str = "mandat"  # optional: the lot's management mandate
    owner_ref: str = "ref_proprietaire"  # optional
    due_date: str = "echeance"  # the unpaid term's due date
    amount: str = "montant"  # its unpaid amount, "1234,56" or "1234.56"


class Prevention(BaseModel):
    """The prevention procedure (P-1 … P-13); defaults are the seed's figures."""

    columns: LedgerColumns = LedgerColumns()
    delimiter: str = ";"
    encoding: str = "utf-8-sig"
    letters_day: int = 10  # P-4, P-6: letters 1 and 2 (the next working day when not one)
    transfer_day: int = 17  # P-12: letter 3 and the hand-over
    new_entrant_months: int = 6  # P-2: lease started less than 6 months before the run
    recidivist_months: int = 12  # P-2: a previous arrears episode ended within 12 months
    phone_sample_size: int = 10  # P-4: phase-1 tenants called, drawn at random
    head_office_share: float = 0.5  # P-6: share of the calls (new entrants excepted) made by head office
    plan_threshold_eur: Decimal = Decimal("500")  # P-5
    plan_max_months: int = 6  # P-5
    reference_months: int = 3  # P-7
    output_dir: Path = Path("prevention")  # letters and phase files, per run


class Retention(BaseModel):
    """How long personal data is kept (GDPR): the README's "Personal data" says what is where."""

    events_days: int = Field(default=30, ge=1)  # done or dismissed inbox events; failed ones until retried or dismissed


class Worker(BaseModel):
    max_attempts: int = 8
    backoff_base_seconds: int = 30
    backoff_max_seconds: int = 3600
    lease_seconds: int = 300
    # Exactly-once effects (app/claims): a claim outlives any Redmine write made under it (a
    # fresh read and a write, each cut at redmine_request_deadline_seconds); a worker waits this long
    # for another's claim before its event is tried again later.
    claim_lease_seconds: int = 180
    claim_wait_seconds: float = 20
    poll_interval_seconds: int = 60
    work_interval_seconds: int = 5
    # One replica runs the scheduler (deadlines, polling, daily scans) under a lease it
    # renews; another takes over at most lease + renew seconds after it dies.
    leader_lease_seconds: int = 30
    leader_renew_seconds: int = 10
    # A job running this long without progress (no answer from Redmine) is reported stuck by
    # /health and /ready, and the scheduler lease is not renewed meanwhile: more than three
    # Redmine requests at their full timeouts (5 + 30 s), less than an event's lease.
    stuck_after_seconds: float = 120.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOUVREMENT_", env_nested_delimiter="__")

    redmine_url: str = "http://127.0.0.1:3000"
    redmine_api_key: SecretStr = SecretStr("")
    # Redmine's text formatting (Administration › Paramètres › Général › Formatage du texte):
    # the service writes its notes and descriptions in it (issue 17). Textile is Redmine 5's
    # default, CommonMark a new Redmine 6's; `redmine check --redmine-dir` compares the two.
    redmine_text_format: Literal["textile", "markdown", "common_mark"] = "textile"
    webhook_secret: SecretStr | None = None  # blank = none: `serve` then refuses to start (issue 14)
    # Senders that cannot sign (issue 16): name → token, given in the delivery's URL
    # (/webhooks/redmine/<token>) or its X-Redmine-API-Key header; several for rotation.
    webhook_tokens: dict[str, SecretStr] = {}
    webhook_unauthenticated: bool = False  # unsigned deliveries accepted: only when chosen, never by default
    database_url: str = "sqlite:///recouvrement.db"
    project: str = "gestion"
    now: datetime | None = Field(default=None, description="Where the process's clock starts")
    # Where the very first poll starts (no cursor yet); None reads the whole project.
    sync_since: datetime | None = None
    webhook_max_bytes: int = 1_048_576
    # Every Redmine request: at most this long to connect, and to wait for each read of the
    # answer (a Redmine that accepts and never answers is cut there: RedmineUnavailable).
    redmine_connect_timeout_seconds: float = 5.0
    redmine_read_timeout_seconds: float = 30.0
    # A whole Redmine call (connect, send, every read of the answer) is cut at this deadline.
    redmine_request_deadline_seconds: float = 60.0
    # The HTTP server (`serve`): /docs, /redoc and /openapi.json only when asked for, and how
    # long a client may take to send a request's head (else closed) and its body (else 408).
    api_docs: bool = False
    http_header_timeout_seconds: float = 10.0
    http_body_timeout_seconds: float = 30.0

    trackers: TrackerNames = TrackerNames()
    fields: FieldNames = FieldNames()
    statuses: StatusNames = StatusNames()
    values: ListValues = ListValues()
    routing: Routing = Routing()
    procedure: Procedure = Procedure()
    worker: Worker = Worker()
    deadlines: Deadlines = Deadlines()
    prevention: Prevention = Prevention()
    retention: Retention = Retention()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlFileSource(settings_cls))

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _blank_secret_is_none(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if text is None or (isinstance(text, str) and not text.strip()) else value


@lru_cache
def get_settings() -> Settings:
    return Settings()
