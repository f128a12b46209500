//! Tenants: who a request writes for or reads from. One place for Tempo's rules, used by every
//! receiver (writes), the HTTP and gRPC APIs and the logs API (reads), and the config checks
//! (`overrides.per_tenant`, the generator's per-tenant settings).
//!
//! - Without multi-tenancy everything belongs to [`SINGLE_TENANT`] and the header is ignored.
//! - With it, `X-Scope-OrgID` names the tenant; a write names exactly one, a read may name
//!   several as `a|b`.
//! - A tenant ID follows dskit's `ValidTenantID`: 1 to 150 characters from `[A-Za-z0-9!-_.*'()]`,
//!   not `.` or `..`.

use axum::http::HeaderMap;

/// Tenant used for everything when multi-tenancy is off (Tempo's `FakeTenantID`).
pub const SINGLE_TENANT: &str = "single-tenant";

/// The header (and gRPC metadata key) naming the tenant.
pub const ORG_ID_HEADER: &str = "x-scope-orgid";

/// Longest tenant ID accepted, as in Tempo.
const MAX_TENANT_LENGTH: usize = 150;

/// Why a request has no usable tenant. Each surface turns it into its own status and text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// Multi-tenancy is on and the request names no tenant.
    #[error("no org id")]
    Missing,
    /// The header names a tenant that breaks the rules; `reason` says which.
    #[error("invalid tenant id {tenant:?}: {reason}")]
    Invalid { tenant: String, reason: String },
    /// A scrape names several tenants (`a|b`), whose series would clash in one exposition.
    #[error("X-Scope-OrgID {header:?} names several tenants: metrics are served for one tenant at a time")]
    Several { header: String },
    /// The header is not visible ASCII.
    #[error("X-Scope-OrgID is not visible ASCII")]
    NotAscii,
}

/// Checks a tenant ID against Tempo's rules (dskit's `ValidTenantID`).
pub fn validate_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() {
        return Err("tenant ID is empty".into());
    }
    if tenant.len() > MAX_TENANT_LENGTH {
        return Err(format!(
            "tenant ID is too long: max {MAX_TENANT_LENGTH} characters"
        ));
    }
    if tenant == "." || tenant == ".." {
        return Err("tenant ID is '.' or '..'".into());
    }
    if let Some(bad) = tenant
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || "!-_.*'()".contains(*character)))
    {
        return Err(format!("tenant ID contains unsupported character '{bad}'"));
    }
    Ok(())
}

fn checked(tenant: &str) -> Result<String, TenantError> {
    validate_tenant(tenant).map_err(|reason| TenantError::Invalid {
        tenant: tenant.to_string(),
        reason,
    })?;
    Ok(tenant.to_string())
}

/// The `X-Scope-OrgID` header of an HTTP request, if it is readable text.
pub fn org_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(ORG_ID_HEADER)
        .and_then(|value| value.to_str().ok())
}

/// The `x-scope-orgid` metadata of a gRPC request, if it is readable text.
pub fn grpc_org_id(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    metadata
        .get(ORG_ID_HEADER)
        .and_then(|value| value.to_str().ok())
}

/// The trimmed header, or `None` when it is absent or blank.
fn present(header: Option<&str>) -> Option<&str> {
    header.map(str::trim).filter(|value| !value.is_empty())
}

/// The one tenant a write belongs to, from its `X-Scope-OrgID` header / metadata value.
pub fn write_tenant(
    multitenancy_enabled: bool,
    header: Option<&str>,
) -> Result<String, TenantError> {
    if !multitenancy_enabled {
        return Ok(SINGLE_TENANT.to_string());
    }
    checked(present(header).ok_or(TenantError::Missing)?)
}

/// Tenants a read applies to: `single-tenant` without multi-tenancy, otherwise the header,
/// where `a|b` reads several tenants at once (each named once, in the order given).
pub fn read_tenants(
    multitenancy_enabled: bool,
    header: Option<&str>,
) -> Result<Vec<String>, TenantError> {
    if !multitenancy_enabled {
        return Ok(vec![SINGLE_TENANT.to_string()]);
    }
    let header = present(header).ok_or(TenantError::Missing)?;
    let mut tenants: Vec<String> = Vec::new();
    for tenant in header.split('|') {
        let tenant = checked(tenant)?;
        if !tenants.contains(&tenant) {
            tenants.push(tenant);
        }
    }
    Ok(tenants)
}

/// The tenant whose generated series a `/metrics` scrape shows: `single-tenant` without
/// multi-tenancy; with it the one tenant the header names, or `None` without the header (the
/// scrape then shows vivace's own metrics only). Several tenants are refused.
pub fn scrape_tenant(
    multitenancy_enabled: bool,
    headers: &HeaderMap,
) -> Result<Option<String>, TenantError> {
    if !multitenancy_enabled {
        return Ok(Some(SINGLE_TENANT.to_string()));
    }
    let Some(header) = headers.get(ORG_ID_HEADER) else {
        return Ok(None);
    };
    let header = header.to_str().map_err(|_| TenantError::NotAscii)?.trim();
    if header.is_empty() {
        return Ok(None);
    }
    if header.contains('|') {
        return Err(TenantError::Several {
            header: header.to_string(),
        });
    }
    checked(header).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_follow_tempo_rules() {
        assert!(validate_tenant("team-a_1.prod").is_ok());
        assert!(validate_tenant("a/b").unwrap_err().contains("'/'"));
        assert!(validate_tenant("..").is_err());
        assert!(validate_tenant(&"x".repeat(151))
            .unwrap_err()
            .contains("too long"));
        assert!(validate_tenant("").is_err());
    }

    #[test]
    fn writes_name_one_tenant() {
        assert_eq!(write_tenant(false, Some("../etc")).unwrap(), SINGLE_TENANT);
        assert_eq!(write_tenant(true, None), Err(TenantError::Missing));
        assert_eq!(write_tenant(true, Some("  ")), Err(TenantError::Missing));
        assert!(matches!(
            write_tenant(true, Some("a\\b")),
            Err(TenantError::Invalid { .. })
        ));
        assert!(matches!(
            write_tenant(true, Some("a|b")),
            Err(TenantError::Invalid { .. })
        ));
        assert_eq!(write_tenant(true, Some(" acme ")).unwrap(), "acme");
    }

    #[test]
    fn reads_may_name_several_tenants() {
        assert_eq!(read_tenants(false, None).unwrap(), [SINGLE_TENANT]);
        assert_eq!(read_tenants(true, None), Err(TenantError::Missing));
        assert_eq!(read_tenants(true, Some("a|b|a")).unwrap(), ["a", "b"]);
        assert!(matches!(
            read_tenants(true, Some("a|")),
            Err(TenantError::Invalid { .. })
        ));
    }

    #[test]
    fn scrapes_name_at_most_one_tenant() {
        let mut headers = HeaderMap::new();
        assert_eq!(scrape_tenant(true, &headers).unwrap(), None);
        assert_eq!(
            scrape_tenant(false, &headers).unwrap().as_deref(),
            Some(SINGLE_TENANT)
        );
        headers.insert(ORG_ID_HEADER, "a|b".parse().unwrap());
        assert!(matches!(
            scrape_tenant(true, &headers),
            Err(TenantError::Several { .. })
        ));
        headers.insert(ORG_ID_HEADER, "acme".parse().unwrap());
        assert_eq!(
            scrape_tenant(true, &headers).unwrap().as_deref(),
            Some("acme")
        );
    }
}
