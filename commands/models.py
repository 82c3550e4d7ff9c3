"""Commands: plain typed requests, validated field by field before any rule runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    model_validator,
)
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217

from aggregates.access import ContributorAccess, Role
from aggregates.client import ClientCategory, ClientStatus
from aggregates.pipeline import CLOSING_PROBABILITY, Stage, StageKind

CLOCK_SKEW = timedelta(minutes=5)

Name = Annotated[str, Field(min_length=1, max_length=200)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Notes = Annotated[str, Field(max_length=10_000)]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e11"), max_digits=16, decimal_places=4)]
Probability = Annotated[int, Field(ge=0, le=100)]
Url = HttpUrl
CustomFieldValue = str | int | float | bool | None
CustomFields = Annotated[
    dict[Annotated[str, Field(max_length=100)], CustomFieldValue], Field(max_length=100)
]


def _not_in_future(value: datetime | None) -> datetime | None:
    if value is not None and value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("occurred_at cannot be in the future")
    return value


BusinessTime = Annotated[AwareDatetime | None, AfterValidator(_not_in_future)]


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise ValueError("this field is required on the record and cannot be set to null")
    return value


# A field a PATCH may leave out but not set to null (the record requires it).
KeptName = Annotated[Name | None, BeforeValidator(_refuse_null)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    occurred_at: BusinessTime = Field(
        default=None,
        description="When this happened in business time (ISO 8601 with offset); default now. "
        "May be in the past for backfills, never before the record's previous event.",
    )


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    street: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: CountryAlpha2 | None = None


class PhoneNumber(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: Annotated[str, Field(max_length=50)] = "primary"
    number: Annotated[str, Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 ()./-]+$")]


class ContactCategory(StrEnum):
    PRIMARY = "primary"
    DECISION_MAKER = "decision_maker"
    TECHNICAL = "technical"
    ADMINISTRATIVE = "administrative"
    EXTERNAL = "external"


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    MEETING = "meeting"
    MESSAGE = "message"


class CommunicationPreferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preferred_channel: Channel | None = None
    opt_outs: list[Channel] = Field(default_factory=list, max_length=10)


class SocialProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    network: Annotated[str, Field(min_length=1, max_length=50)]
    url: Url


# --- clients -------------------------------------------------------------------------------


class ClientDetailFields(BaseModel):
    """The optional details of a client."""

    address: Address | None = None
    phones: list[PhoneNumber] = Field(default_factory=list, max_length=20)
    emails: list[EmailStr] = Field(default_factory=list, max_length=20)
    website: Url | None = None
    tax_id: Annotated[str, Field(max_length=50)] | None = None
    notes: Notes | None = None
    custom_fields: CustomFields = Field(default_factory=dict)


class RegisterClient(Command, ClientDetailFields):
    name: Name
    category: ClientCategory = ClientCategory.PROSPECT
    status: ClientStatus = ClientStatus.PROSPECT

    def details(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(ClientDetailFields.model_fields))


class ChangeClientDetails(Command):
    """Change the fields given; fields left out keep their value."""

    name: KeptName = None
    address: Address | None = None
    phones: list[PhoneNumber] | None = Field(default=None, max_length=20)
    emails: list[EmailStr] | None = Field(default=None, max_length=20)
    website: Url | None = None
    tax_id: Annotated[str, Field(max_length=50)] | None = None
    notes: Notes | None = None
    custom_fields: CustomFields | None = None

    def changed_details(self) -> dict[str, Any]:
        """The fields given, name included."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"occurred_at"})


class ChangeClientStatus(Command):
    status: ClientStatus | None = None
    category: ClientCategory | None = None


class SetPrimaryContact(Command):
    contact_id: UUID


class ArchiveRecord(Command):
    pass


class RestoreRecord(Command):
    pass


# --- contacts ------------------------------------------------------------------------------


class ContactDetailFields(BaseModel):
    job_title: ShortText | None = None
    phones: list[PhoneNumber] = Field(default_factory=list, max_length=20)
    department: ShortText | None = None
    notes: Notes | None = None
    social_profiles: list[SocialProfile] = Field(default_factory=list, max_length=20)
    category: ContactCategory | None = None
    communication_preferences: CommunicationPreferences = Field(
        default_factory=CommunicationPreferences
    )
    custom_fields: CustomFields = Field(default_factory=dict)


class CreateContact(Command, ContactDetailFields):
    first_name: Name
    last_name: Name
    email: EmailStr
    client_id: UUID | None = Field(default=None, description="Link the contact to this client.")

    def details(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(ContactDetailFields.model_fields))


class ChangeContactDetails(Command):
    """Change the fields given; fields left out keep their value."""

    first_name: KeptName = None
    last_name: KeptName = None
    email: Annotated[EmailStr | None, BeforeValidator(_refuse_null)] = None
    job_title: ShortText | None = None
    phones: list[PhoneNumber] | None = Field(default=None, max_length=20)
    department: ShortText | None = None
    notes: Notes | None = None
    social_profiles: list[SocialProfile] | None = Field(default=None, max_length=20)
    category: ContactCategory | None = None
    communication_preferences: CommunicationPreferences | None = None
    custom_fields: CustomFields | None = None

    def changed_details(self) -> dict[str, Any]:
        return self.model_dump(
            mode="json",
            exclude_unset=True,
            exclude={"first_name", "last_name", "email", "occurred_at"},
        )


class LinkContact(Command):
    client_id: UUID


class UnlinkContact(Command):
    pass


# --- deals ---------------------------------------------------------------------------------


class OpenDeal(Command):
    name: Name
    client_id: UUID
    value: Money
    currency: ISO4217
    expected_close_date: date
    pipeline_id: Annotated[str, Field(min_length=1, max_length=100)] = "default"
    probability: Probability | None = Field(
        default=None, description="0–100; default: the probability of the first stage."
    )
    owner_id: ShortText | None = None
    source: ShortText | None = None
    competitor: ShortText | None = None
    notes: Notes | None = None
    stakeholder_contact_ids: list[UUID] = Field(default_factory=list, max_length=100)
    stakeholder_user_ids: list[ShortText] = Field(default_factory=list, max_length=100)


class ChangeStage(Command):
    stage: Annotated[str, Field(min_length=1, max_length=100)]
    probability: Probability | None = Field(
        default=None, description="Default: the new stage's probability."
    )


class ChangeDealValue(Command):
    value: Money
    currency: ISO4217


class ChangeExpectedCloseDate(Command):
    expected_close_date: date


class ChangeProbability(Command):
    probability: Probability


class ReassignDeal(Command):
    owner_id: ShortText | None = Field(description="The new owner; null leaves it unassigned.")


class ChangeStakeholders(Command):
    contact_ids: list[UUID] = Field(default_factory=list, max_length=100)
    user_ids: list[ShortText] = Field(default_factory=list, max_length=100)


class ChangeDealDetails(Command):
    """Change the fields given; fields left out keep their value."""

    name: KeptName = None
    source: ShortText | None = None
    competitor: ShortText | None = None
    notes: Notes | None = None


class WinDeal(Command):
    pass


class LoseDeal(Command):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    competitor: ShortText | None = Field(default=None, description="Who won the deal instead.")


class ReopenDeal(Command):
    stage: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="Default: the last open stage before it closed."
    )


class MoveDealToPipeline(Command):
    pipeline_id: Annotated[str, Field(min_length=1, max_length=100)]
    stage: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="An open stage of that pipeline; default: its first open stage."
    )
    probability: Probability | None = Field(
        default=None, description="Default: the new stage's probability."
    )


# --- pipelines -------------------------------------------------------------------------------

Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Lowercase letters, digits, '-' and '_'; never changes.",
    ),
]


class StageDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Slug
    name: Name
    kind: StageKind = StageKind.OPEN
    probability: Probability | None = Field(
        default=None,
        description="Default probability of deals in the stage; required for an open stage "
        "(the won stage's is 100, the lost stage's 0).",
    )

    @model_validator(mode="after")
    def _open_stages_have_a_probability(self) -> StageDefinition:
        if self.probability is None and self.kind is StageKind.OPEN:
            raise ValueError(f"open stage {self.id!r} needs a probability")
        return self

    def stage(self) -> Stage:
        probability = self.probability
        if probability is None:
            probability = CLOSING_PROBABILITY[self.kind.value]
        return Stage(self.id, self.name, probability, self.kind)


class DefinePipeline(Command):
    id: Slug = Field(description="The pipeline's id, as deals name it (pipeline_id).")
    name: Name
    stages: list[StageDefinition] | None = Field(
        default=None,
        min_length=3,
        max_length=50,
        description="In order: at least one open stage, exactly one won and one lost. "
        "Default: the stages of the default pipeline.",
    )


class RenamePipeline(Command):
    name: Name


class AddStage(Command):
    id: Slug
    name: Name
    probability: Probability
    position: int | None = Field(
        default=None,
        ge=0,
        le=50,
        description="Its place in the order, 0 first; default: after the last open stage.",
    )


class ChangePipelineStage(Command):
    """Change the fields given; fields left out keep their value."""

    name: KeptName = None
    probability: Annotated[Probability | None, BeforeValidator(_refuse_null)] = None


class ReorderStages(Command):
    stage_ids: list[Slug] = Field(
        min_length=1, max_length=50, description="Every stage of the pipeline, in the new order."
    )


class RemoveStage(Command):
    move_open_deals_to: Slug | None = Field(
        default=None, description="The open stage the removed stage's open deals move to."
    )


# --- exchange rates --------------------------------------------------------------------------


class SetExchangeRate(Command):
    rate_to_base: Decimal = Field(
        gt=0,
        le=Decimal("1e12"),
        max_digits=24,
        decimal_places=12,
        description="What one unit of the currency is worth in the base currency.",
    )
    effective_from: date = Field(description="The first day (UTC) the rate applies.")


# --- administration --------------------------------------------------------------------------

UserId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s/]+$")]


class CreateOrganization(Command):
    name: Name
    base_currency: ISO4217 = ISO4217("EUR")
    admin_user_id: UserId


class ChangeOrganizationSettings(Command):
    """Change the settings given; settings left out keep their value."""

    name: KeptName = None
    base_currency: Annotated[ISO4217 | None, BeforeValidator(_refuse_null)] = None
    crm_enabled: Annotated[bool | None, BeforeValidator(_refuse_null)] = None
    deal_creator_roles: Annotated[list[Role] | None, BeforeValidator(_refuse_null)] = Field(
        default=None, description="Roles that may create deals; ADMIN always may."
    )
    contributor_access: Annotated[ContributorAccess | None, BeforeValidator(_refuse_null)] = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True, exclude={"occurred_at"})


class AddMember(Command):
    user_id: UserId
    role: Role


class ChangeRole(Command):
    role: Role


class RemoveMember(Command):
    pass


def _in_future(value: datetime | None) -> datetime | None:
    if value is not None and value <= datetime.now(UTC):
        raise ValueError("a token must expire in the future")
    return value


class IssueToken(Command):
    label: Annotated[str, Field(min_length=1, max_length=100)] = "api"
    expires_at: Annotated[AwareDatetime | None, AfterValidator(_in_future)] = None


class RevokeToken(Command):
    pass
