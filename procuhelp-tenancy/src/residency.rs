//! Data residency: which region an organisation's data lives in, which region a
//! deployment serves, and where the deployment's stores and subprocessors are.
//!
//! - Every organisation has a [`Region`] (`app.organisations.data_region`, set when it is
//!   created). A deployment serves exactly one (`app.deployment`, written by the schema
//!   owner from its [`Residency`] with [`set_deployment_region`]); the database refuses to
//!   enter an organisation of any other region — `app.enter_org` and `app.enter_session`
//!   answer as for an unknown organisation (migrations 0020, 0021).
//! - A [`Residency`] declares where the database, the backups, the vault and every
//!   subprocessor are, by country. [`Residency::findings`] is the posture check: for an
//!   EU organisation, anything outside the EU/EEA is a finding; so is an organisation of
//!   another region than the deployment's (it would not be served), and a deployment
//!   region that differs from the database's.
//! - [`Residency::subprocessors_markdown`] renders the list of subprocessors
//!   (`docs/subprocessors.md` is generated from the example server's configuration).
//!
//! ```
//! use procuhelp_tenancy::residency::{Region, Residency};
//!
//! let residency: Residency = serde_json::from_str(r#"{
//!     "region": "eu",
//!     "database": { "provider": "self-hosted", "country": "DE" },
//!     "backups": { "provider": "self-hosted", "country": "FI" },
//!     "vault": { "provider": "OpenBao, self-hosted", "country": "DE" },
//!     "subprocessors": [
//!         { "name": "Mailer Inc.", "purpose": "e-mail delivery",
//!           "data": "e-mail address", "country": "US" }
//!     ]
//! }"#)?;
//! let findings = residency.findings(Region::Eu, &[Region::Eu]);
//! assert_eq!(findings.len(), 1); // the US mailer, for EU organisations
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use procuhelp_core::OrgId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::PgPool;

use crate::{Error, Result};

/// A data region: where an organisation's personal data must stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// The European Union and the EEA (GDPR applies).
    Eu,
    /// The United Kingdom.
    Uk,
    /// Switzerland.
    Ch,
    /// The United States.
    Us,
}

/// The EU's 27 member states and the EEA's other three (Iceland, Liechtenstein, Norway):
/// where GDPR applies and personal data moves freely.
const EU_EEA: [&str; 30] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

impl Region {
    /// Every region.
    pub const ALL: [Region; 4] = [Region::Eu, Region::Uk, Region::Ch, Region::Us];

    /// The stable name (`eu`), as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Region::Eu => "eu",
            Region::Uk => "uk",
            Region::Ch => "ch",
            Region::Us => "us",
        }
    }

    /// Whether `country` lies in this region.
    pub fn contains(self, country: &Country) -> bool {
        match self {
            Region::Eu => EU_EEA.contains(&country.as_str()),
            Region::Uk => country.as_str() == "GB",
            Region::Ch => country.as_str() == "CH",
            Region::Us => country.as_str() == "US",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A region name that is not one of [`Region::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data region {0:?} (one of eu, uk, ch, us)")]
pub struct UnknownRegion(String);

impl FromStr for Region {
    type Err = UnknownRegion;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRegion(s.chars().take(16).collect()))
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ISO 3166-1 alpha-2 country code (`DE`): two upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(String);

impl Country {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Country {
    type Err = &'static str;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            // Codes in common use that are not ISO 3166-1's: they would silently count
            // as outside every region.
            "UK" => Err("the United Kingdom is GB in ISO 3166-1"),
            "EL" => Err("Greece is GR in ISO 3166-1"),
            "EU" => Err("EU is not a country: name the member state"),
            _ if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
                Ok(Country(s.to_owned()))
            }
            _ => Err("a country is two upper-case letters (ISO 3166-1 alpha-2, e.g. DE)"),
        }
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a store is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Who runs it (`self-hosted`, a provider's name).
    pub provider: String,
    /// The country its data is in.
    pub country: Country,
}

/// A third party that processes personal data for the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subprocessor {
    /// Its name.
    pub name: String,
    /// What it does for us.
    pub purpose: String,
    /// Which personal data it receives.
    pub data: String,
    /// Where it processes them.
    pub country: Country,
}

/// A deployment's residency: the region it serves and where everything holding its data
/// is. Read from JSON (unknown fields and malformed regions or countries are refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residency {
    /// The region whose organisations this deployment serves.
    pub region: Region,
    /// The database.
    pub database: Location,
    /// The backup repository.
    pub backups: Location,
    /// The vault (keys and secrets).
    pub vault: Location,
    /// Third parties receiving personal data.
    #[serde(default)]
    pub subprocessors: Vec<Subprocessor>,
}

/// Something the residency posture check refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidencyFinding(pub String);

impl fmt::Display for ResidencyFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Residency {
    /// What is wrong with this deployment for a database that says it serves
    /// `database_region` and holds organisations of `org_regions`: a region mismatch, an
    /// organisation that would not be served, and — when any organisation is in the EU —
    /// every store or subprocessor outside the EU/EEA. Empty: the posture holds.
    pub fn findings(
        &self,
        database_region: Region,
        org_regions: &[Region],
    ) -> Vec<ResidencyFinding> {
        let mut out = Vec::new();
        if database_region != self.region {
            out.push(ResidencyFinding(format!(
                "the configuration serves region {} but the database is set to {}",
                self.region, database_region
            )));
        }
        let mut foreign: Vec<Region> = org_regions
            .iter()
            .copied()
            .filter(|r| *r != self.region)
            .collect();
        foreign.sort();
        foreign.dedup();
        for region in foreign {
            let n = org_regions.iter().filter(|r| **r == region).count();
            out.push(ResidencyFinding(format!(
                "{n} organisation(s) of region {region} are not served by this {} deployment",
                self.region
            )));
        }
        if org_regions.contains(&Region::Eu) {
            let stores = [
                ("the database", &self.database.country),
                ("the backups", &self.backups.country),
                ("the vault", &self.vault.country),
            ];
            for (what, country) in stores {
                if !Region::Eu.contains(country) {
                    out.push(ResidencyFinding(format!(
                        "{what} is in {} (outside the EU/EEA) and holds EU organisations' data",
                        country.as_str()
                    )));
                }
            }
            for s in &self.subprocessors {
                if !Region::Eu.contains(&s.country) {
                    out.push(ResidencyFinding(format!(
                        "subprocessor {:?} processes EU organisations' data in {} (outside the EU/EEA)",
                        s.name,
                        s.country.as_str()
                    )));
                }
            }
        }
        out
    }

    /// The list of subprocessors and stores as Markdown (`docs/subprocessors.md`).
    pub fn subprocessors_markdown(&self) -> String {
        let mut out = format!(
            "# Subprocessors and where data is kept\n\n\
             Generated from the deployment's residency configuration by \
             `procuhelp_tenancy::residency::Residency::subprocessors_markdown`; a test fails \
             when this file and the configuration disagree. Do not edit by hand.\n\n\
             This deployment serves organisations of region **{}**.\n\n\
             ## Stores\n\n| store | provider | country |\n| --- | --- | --- |\n",
            self.region
        );
        for (what, l) in [
            ("database", &self.database),
            ("backups", &self.backups),
            ("vault", &self.vault),
        ] {
            out.push_str(&format!(
                "| {what} | {} | {} |\n",
                cell(&l.provider),
                l.country.as_str()
            ));
        }
        out.push_str("\n## Subprocessors\n\n");
        if self.subprocessors.is_empty() {
            out.push_str("None.\n");
        } else {
            out.push_str(
                "| name | purpose | personal data | country |\n| --- | --- | --- | --- |\n",
            );
            for s in &self.subprocessors {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    cell(&s.name),
                    cell(&s.purpose),
                    cell(&s.data),
                    s.country.as_str()
                ));
            }
        }
        out
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The region the database behind `pool` serves (`app.deployment`).
pub async fn deployment_region(pool: &PgPool) -> Result<Region> {
    let region: String = sqlx::query_scalar("SELECT region FROM app.deployment")
        .fetch_one(pool)
        .await?;
    region
        .parse()
        .map_err(|_| Error::Config(format!("app.deployment holds region {region:?}")))
}

/// Sets the region the database serves. Runs on the **owner** pool (only the owner may
/// write `app.deployment`); organisations of any other region stop being served at once.
pub async fn set_deployment_region(owner: &PgPool, region: Region) -> Result<()> {
    sqlx::query("UPDATE app.deployment SET region = $1")
        .bind(region.as_str())
        .execute(owner)
        .await?;
    Ok(())
}

/// Every organisation's region. Runs on the **owner** pool (see
/// [`organisation_ids`](crate::organisation_ids)).
pub async fn organisation_regions(owner: &PgPool) -> Result<Vec<(OrgId, Region)>> {
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, data_region FROM app.organisations ORDER BY id")
            .fetch_all(owner)
            .await?;
    rows.into_iter()
        .map(|(id, region)| {
            let org = OrgId::from_uuid(id)
                .map_err(|_| Error::Config("bad organisation id".to_owned()))?;
            let region = region
                .parse()
                .map_err(|_| Error::Config(format!("organisation {org} has region {region:?}")))?;
            Ok((org, region))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn residency(json: &str) -> std::result::Result<Residency, serde_json::Error> {
        serde_json::from_str(json)
    }

    const EU: &str = r#"{"region":"eu",
        "database":{"provider":"self-hosted","country":"DE"},
        "backups":{"provider":"self-hosted","country":"FI"},
        "vault":{"provider":"self-hosted","country":"DE"}}"#;

    #[test]
    fn malformed_regions_and_countries_are_refused_with_their_reason() {
        assert_eq!("eu".parse::<Region>(), Ok(Region::Eu));
        for bad in ["EU", "europe", "", "e u"] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
        for bad in [
            r#""de""#, r#""DEU""#, r#""D1""#, r#""""#, r#""UK""#, r#""EL""#,
        ] {
            assert!(serde_json::from_str::<Country>(bad).is_err(), "{bad}");
        }
        let err = residency(&EU.replace(r#""region":"eu""#, r#""region":"mars""#)).unwrap_err();
        assert!(err.to_string().contains("unknown data region"), "{err}");
        let err = residency(&EU.replace("\"FI\"", "\"fi\"")).unwrap_err();
        assert!(err.to_string().contains("two upper-case letters"), "{err}");
        let err =
            residency(&EU.replace(r#""region":"eu","#, r#""region":"eu","extra":1,"#)).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn eu_organisations_refuse_stores_and_subprocessors_outside_the_eu() {
        let ok = residency(EU).unwrap();
        assert!(
            ok.findings(Region::Eu, &[Region::Eu, Region::Eu])
                .is_empty()
        );
        // Norway is in the EEA: fine; the US is not.
        let mut r = ok.clone();
        r.backups.country = "NO".parse().unwrap();
        assert!(r.findings(Region::Eu, &[Region::Eu]).is_empty());
        r.vault.country = "US".parse().unwrap();
        r.subprocessors.push(Subprocessor {
            name: "Mailer".to_owned(),
            purpose: "mail".to_owned(),
            data: "address".to_owned(),
            country: "US".parse().unwrap(),
        });
        let f = r.findings(Region::Eu, &[Region::Eu]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].0.contains("the vault is in US"));
        assert!(f[1].0.contains("Mailer"));
        // Without EU organisations, nothing is required of the stores.
        assert!(r.findings(Region::Eu, &[]).is_empty());
        // A foreign organisation, and a database serving another region.
        let f = ok.findings(Region::Us, &[Region::Eu, Region::Us, Region::Us]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].0.contains("database is set to us"));
        assert!(f[1].0.contains("2 organisation(s) of region us"));
    }

    #[test]
    fn the_subprocessor_list_escapes_what_it_shows() {
        let mut r = residency(EU).unwrap();
        r.subprocessors.push(Subprocessor {
            name: "A | B".to_owned(),
            purpose: "two\nlines".to_owned(),
            data: "d".to_owned(),
            country: "IE".parse().unwrap(),
        });
        let md = r.subprocessors_markdown();
        assert!(md.contains("| A \\| B | two lines | d | IE |"), "{md}");
        assert!(md.contains("region **eu**"));
    }
}
