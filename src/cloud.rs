//! Microsoft's clouds (the guide's "Microsoft authority"): each has its own
//! identity platform host and Graph root, and tokens never cross between them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cloud {
    /// Worldwide, including GCC Moderate.
    #[default]
    #[serde(rename = "global")]
    Global,
    /// US Government L4 (GCC High).
    #[serde(rename = "usgov")]
    UsGov,
    /// US Government L5 (DoD).
    #[serde(rename = "usgov-dod")]
    UsGovDod,
    /// China, operated by 21Vianet.
    #[serde(rename = "china")]
    China,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGov, Cloud::UsGovDod, Cloud::China];

    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::UsGov => "usgov",
            Self::UsGovDod => "usgov-dod",
            Self::China => "china",
        }
    }

    /// The identity platform's authority host.
    pub fn login_url(self) -> &'static str {
        match self {
            Self::Global => "https://login.microsoftonline.com",
            Self::UsGov | Self::UsGovDod => "https://login.microsoftonline.us",
            Self::China => "https://login.partner.microsoftonline.cn",
        }
    }

    /// The Microsoft Graph root; also the audience of this cloud's Graph
    /// tokens, whose app-only scope is `<root>/.default`.
    pub fn graph_url(self) -> &'static str {
        match self {
            Self::Global => "https://graph.microsoft.com",
            Self::UsGov => "https://graph.microsoft.us",
            Self::UsGovDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The cloud whose Graph root is `root` (trailing slash and case ignored).
    pub fn from_graph_url(root: &str) -> Option<Cloud> {
        let root = root.trim_end_matches('/');
        Cloud::ALL
            .into_iter()
            .find(|cloud| cloud.graph_url().eq_ignore_ascii_case(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_and_graph_roots_round_trip() {
        for cloud in Cloud::ALL {
            let json = serde_json::to_string(&cloud).expect("serialize");
            assert_eq!(json, format!("\"{}\"", cloud.as_str()));
            assert_eq!(
                Cloud::from_graph_url(&format!("{}/", cloud.graph_url())),
                Some(cloud)
            );
        }
        assert_eq!(Cloud::from_graph_url("https://graph.microsoft.de"), None);
    }
}
