//! Which region's replica takes an item's writes in a multi-region deployment
//! (docs/multi-region.md, "home region"). Every item has one writer region, so the
//! last-writer-wins of global tables never has to choose between two writes.
//!
//! Homes come from rendezvous hashing over the configured region list: removing a region
//! moves only the keys homed there, and every region computes the same home without
//! asking another. An identity's id is drawn until it hashes to the region that creates
//! it (or, with a customId, to the customId's home), so the id alone routes later writes.

use aws_lc_rs::digest;

use super::identity::{CustomId, IdentityId, ResourceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    local: String,
    regions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPlacement(String);

impl Placement {
    /// `regions`: every region of the deployment, in any order (each region computes the
    /// same homes from the same set); `local`: the one this process runs in.
    pub fn new(local: &str, regions: &[String]) -> Result<Self, InvalidPlacement> {
        for (i, region) in regions.iter().enumerate() {
            if region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(InvalidPlacement(format!(
                    "'{region}' is not a region name (like us-east-1)"
                )));
            }
            if regions[..i].contains(region) {
                return Err(InvalidPlacement(format!("{region} is listed twice")));
            }
        }
        if !regions.iter().any(|r| r == local) {
            return Err(InvalidPlacement(format!(
                "the local region {local} is not one of {}",
                regions.join(", ")
            )));
        }
        Ok(Self {
            local: local.to_owned(),
            regions: regions.to_vec(),
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// The home of a customId's mapping, and of the identity created with it.
    pub fn custom_id_home(&self, custom_id: &CustomId) -> &str {
        self.home_of(b"customId", custom_id.as_str())
    }

    /// The home of an identity: where its item is written (revoke, delete).
    pub fn identity_home(&self, id: &IdentityId) -> &str {
        self.home_of(b"identity", id.as_str())
    }

    /// Whether this region is the identity's home.
    pub fn is_home_of(&self, id: &IdentityId) -> bool {
        self.identity_home(id) == self.local
    }

    /// A fresh id of `resource` whose home is `home` (one of the regions): about as many
    /// draws as there are regions.
    pub fn new_id(&self, resource: ResourceId, home: &str) -> IdentityId {
        loop {
            let id = IdentityId::new(resource);
            if self.identity_home(&id) == home {
                return id;
            }
        }
    }

    /// Highest random weight: SHA-256 of the kind, region and key, so that the homes are
    /// the same in every build and on every platform.
    fn home_of(&self, kind: &[u8], key: &str) -> &str {
        self.regions
            .iter()
            .max_by_key(|region| {
                let mut context = digest::Context::new(&digest::SHA256);
                context.update(kind);
                context.update(&[0]);
                context.update(region.as_bytes());
                context.update(&[0]);
                context.update(key.as_bytes());
                let hash = context.finish();
                let mut weight = [0u8; 8];
                weight.copy_from_slice(&hash.as_ref()[..8]);
                (u64::from_be_bytes(weight), region.as_str())
            })
            .map(String::as_str)
            .unwrap_or(&self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn placement(local: &str, names: &[&str]) -> Placement {
        Placement::new(local, &regions(names)).unwrap()
    }

    const THREE: &[&str] = &["us-east-1", "eu-west-1", "ap-south-1"];

    fn custom_ids(n: usize) -> Vec<CustomId> {
        (0..n)
            .map(|i| CustomId::parse(&format!("user-{i}")).unwrap())
            .collect()
    }

    #[test]
    fn every_region_computes_the_same_home_whatever_the_list_order() {
        let a = placement("us-east-1", THREE);
        let b = placement("ap-south-1", &["ap-south-1", "us-east-1", "eu-west-1"]);
        for custom_id in custom_ids(200) {
            assert_eq!(a.custom_id_home(&custom_id), b.custom_id_home(&custom_id));
        }
    }

    #[test]
    fn homes_spread_over_the_regions_and_removing_one_moves_only_its_keys() {
        let three = placement("us-east-1", THREE);
        let two = placement("us-east-1", &["us-east-1", "eu-west-1"]);
        let ids = custom_ids(3000);
        for region in three.regions() {
            let homed = ids
                .iter()
                .filter(|c| three.custom_id_home(c) == region)
                .count();
            assert!((800..1200).contains(&homed), "{region}: {homed} of 3000");
        }
        for custom_id in &ids {
            let before = three.custom_id_home(custom_id);
            if before != "ap-south-1" {
                assert_eq!(two.custom_id_home(custom_id), before);
            }
        }
    }

    #[test]
    fn new_ids_are_homed_where_asked() {
        let placement = placement("eu-west-1", THREE);
        let resource = ResourceId::random();
        for home in placement.regions().to_vec() {
            for _ in 0..20 {
                let id = placement.new_id(resource, &home);
                assert_eq!(placement.identity_home(&id), home);
                assert!(id.belongs_to(resource));
            }
        }
    }

    #[test]
    fn a_bad_region_list_is_refused() {
        let refused = |local: &str, names: &[&str]| Placement::new(local, &regions(names)).is_err();
        assert!(refused("us-east-1", &["eu-west-1", "ap-south-1"]));
        assert!(refused("us-east-1", &["us-east-1", "us-east-1"]));
        assert!(refused("us-east-1", &["us-east-1", "eu west 1"]));
        assert!(!refused("us-east-1", &["us-east-1", "eu-west-1"]));
    }
}
