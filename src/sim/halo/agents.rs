//! `/api/Agent`: agents as `Uname` objects.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;

use super::auth::Caller;
use super::errors::HaloError;
use super::params::Params;
use super::{API_AGENT_ID, AgentSeed, HaloSim, UNASSIGNED_AGENT_ID};

/// The `Uname` properties the simulator models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: i32,
    pub name: String,
    pub firstname: String,
    pub surname: String,
    pub initials: String,
    pub email: String,
    pub isdisabled: bool,
    pub isapiagent: bool,
    pub is_agent: bool,
}

impl Agent {
    fn named(id: i32, name: &str, email: &str) -> Self {
        let (firstname, surname) = name.split_once(' ').unwrap_or((name, ""));
        let initials = [firstname, surname]
            .iter()
            .filter_map(|part| part.chars().next())
            .collect();
        Self {
            id,
            name: name.to_owned(),
            firstname: firstname.to_owned(),
            surname: surname.to_owned(),
            initials,
            email: email.to_owned(),
            isdisabled: false,
            isapiagent: false,
            is_agent: true,
        }
    }

    pub fn unassigned() -> Self {
        Self::named(UNASSIGNED_AGENT_ID, "Unassigned", "")
    }

    pub fn api_agent() -> Self {
        Self {
            isapiagent: true,
            ..Self::named(API_AGENT_ID, "API Agent", "")
        }
    }

    pub fn from_seed(seed: AgentSeed) -> Self {
        Self {
            isdisabled: seed.isdisabled,
            ..Self::named(seed.id, &seed.name, &seed.email)
        }
    }
}

fn not_found(id: &str) -> HaloError {
    HaloError::NotFound(format!("Agent {id} not found."))
}

/// `GET /api/Agent`: enabled and disabled agents and the unassigned
/// pseudo-agent, API agents only on request.
pub(super) async fn list(
    State(sim): State<HaloSim>,
    _caller: Caller,
    params: Params,
) -> Result<Json<Value>, HaloError> {
    let include_enabled = params.flag("includeenabled")?.unwrap_or(true);
    let include_disabled = params.flag("includedisabled")?.unwrap_or(true);
    let include_unassigned = params.flag("includeunassigned")?.unwrap_or(true);
    let include_api = params.flag("includeapiagents")?.unwrap_or(false);
    let search = params.text("search").map(str::to_lowercase);
    let page = params.page()?;
    let agents: Vec<Agent> = sim
        .world()
        .agents
        .values()
        .filter(|a| {
            if a.isdisabled {
                include_disabled
            } else {
                include_enabled
            }
        })
        .filter(|a| include_unassigned || a.id != UNASSIGNED_AGENT_ID)
        .filter(|a| include_api || !a.isapiagent)
        .filter(|a| {
            search.as_deref().is_none_or(|s| {
                a.name.to_lowercase().contains(s) || a.email.to_lowercase().contains(s)
            })
        })
        .cloned()
        .collect();
    Ok(Json(match page {
        Some(page) => page.envelope("agents", agents),
        None => serde_json::to_value(agents).unwrap_or_default(),
    }))
}

/// `GET /api/Agent/{id}`; a non-numeric id does not match the route, as in
/// Halo, so it is a 404.
pub(super) async fn by_id(
    State(sim): State<HaloSim>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Agent>, HaloError> {
    let number: i32 = id.parse().map_err(|_| not_found(&id))?;
    sim.world()
        .agents
        .get(&number)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// `GET /api/Agent/me`: the agent the API application logs in as.
pub(super) async fn me(
    State(sim): State<HaloSim>,
    caller: Caller,
) -> Result<Json<Agent>, HaloError> {
    sim.world()
        .agents
        .get(&caller.agent_id)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found(&caller.agent_id.to_string()))
}
