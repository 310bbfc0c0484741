//! The application state every handler reaches through `web::Data`: settings, store, clock,
//! metadata, the renderers' page context, metrics and keys. Below `http`: it knows no route.

use std::sync::Arc;

use crate::clock::Clock;
use crate::flows::Ctx;
use crate::flows::cimd::Documents;
use crate::flows::gate::Gate;
use crate::flows::guard::SignInGuard;
use crate::flows::keys::TokenKeys;
use crate::flows::sessions::ServerKeys;
use crate::flows::upstream::Providers;
use crate::metadata::Metadata;
use crate::metrics::Metrics;
use crate::render::Page;
use crate::settings::Settings;
use crate::store::Store;

/// Everything a handler needs. No globals.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub meta: Arc<Metadata>,
    pub page: Page,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub keys: ServerKeys,
    pub guard: SignInGuard,
    pub documents: Documents,
    pub upstream: Providers,
    pub signing: TokenKeys,
    /// The gate in front of MCP servers (docs/behaviour.md §13.2).
    pub gate: Arc<Gate>,
}

impl AppState {
    pub fn new(settings: Settings, store: Store, clock: Clock) -> Self {
        let meta = Metadata::build(&settings);
        let guard = SignInGuard::new(&settings);
        let page = Page::new(&settings, &meta.endpoints);
        let documents = Documents::new(&settings.cimd);
        let upstream = Providers::new(&settings.login.providers);
        let signing = TokenKeys::new(&settings.tokens);
        let gate = Arc::new(Gate::new(&settings.gate, &meta.endpoints));
        Self {
            settings: Arc::new(settings),
            store,
            meta: Arc::new(meta),
            page,
            clock,
            metrics: Default::default(),
            keys: ServerKeys::default(),
            guard,
            documents,
            upstream,
            signing,
            gate,
        }
    }

    /// What a flow works with, at the time of this request.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            store: &self.store,
            endpoints: &self.meta.endpoints,
            keys: &self.keys,
            guard: &self.guard,
            documents: &self.documents,
            upstream: &self.upstream,
            signing: &self.signing,
            now: self.clock.now(),
        }
    }
}
