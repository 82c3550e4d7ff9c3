"""Exchange-rate commands (ADMIN): set what a currency is worth in the base currency from a
date on, recorded on the organization's one :class:`ExchangeRates` record."""

from __future__ import annotations

from aggregates.exchange_rates import ExchangeRates
from aggregates.organization import Organization
from commands import models
from commands.errors import RecordNotFound
from commands.service import Accepted, CommandMeta, CrmApplication, Decision


class ExchangeRateCommands:
    def __init__(self, app: CrmApplication) -> None:
        self.app = app

    def set_rate(self, currency: str, cmd: models.SetExchangeRate, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            organization = self.app.find(Organization, meta.organization_id)
            if organization is None:
                raise RecordNotFound("organization", meta.organization_id)
            context = meta.context()
            try:
                rates = self.app.load_record(
                    ExchangeRates, ExchangeRates.id_for(meta.organization_id), meta
                )
            except RecordNotFound:
                rates = ExchangeRates(context=context)
            rates.set_rate(
                currency, cmd.rate_to_base, cmd.effective_from, organization.base_currency, context
            )
            return Decision(rates, [rates])

        return self.app.execute(meta, decide)
