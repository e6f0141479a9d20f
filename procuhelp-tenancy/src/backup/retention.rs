//! Which backups to keep: the newest of each of the last N days, weeks (ISO) and months
//! ("grandfather-father-son"), and never the latest complete one.

use std::collections::BTreeSet;

use time::OffsetDateTime;

/// How many daily, weekly and monthly backups to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest backup of each of this many most recent days that have one.
    pub daily: usize,
    /// The newest of each of this many most recent ISO weeks.
    pub weekly: usize,
    /// The newest of each of this many most recent months.
    pub monthly: usize,
}

impl Default for Retention {
    /// 7 daily, 4 weekly, 12 monthly.
    fn default() -> Self {
        Self {
            daily: 7,
            weekly: 4,
            monthly: 12,
        }
    }
}

impl Retention {
    /// The labels of `backups` (label, time taken; complete backups only) that this
    /// policy no longer keeps. The newest backup is always kept, whatever the policy.
    pub fn expired<'a>(&self, backups: &'a [(String, OffsetDateTime)]) -> Vec<&'a str> {
        let mut newest_first: Vec<&(String, OffsetDateTime)> = backups.iter().collect();
        newest_first.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let mut keep: BTreeSet<&str> = BTreeSet::new();
        if let Some(newest) = newest_first.first() {
            keep.insert(&newest.0);
        }
        let mut bucket = |count: usize, key: &dyn Fn(OffsetDateTime) -> (i32, u32)| {
            let mut seen = BTreeSet::new();
            for (label, at) in &newest_first {
                if seen.len() == count && !seen.contains(&key(*at)) {
                    break;
                }
                if seen.insert(key(*at)) {
                    keep.insert(label);
                }
            }
        };
        bucket(self.daily, &|t| (t.year(), u32::from(t.ordinal())));
        bucket(self.weekly, &|t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, u32::from(w))
        });
        bucket(self.monthly, &|t| {
            (t.year(), u32::from(u8::from(t.month())))
        });
        backups
            .iter()
            .map(|(l, _)| l.as_str())
            .filter(|l| !keep.contains(l))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    fn daily_for(days: i64) -> Vec<(String, OffsetDateTime)> {
        let start = time::macros::datetime!(2025-01-01 02:00 UTC);
        (0..days)
            .map(|d| (format!("b{d:04}"), start + Duration::days(d)))
            .collect()
    }

    #[test]
    fn a_year_of_dailies_keeps_seven_four_and_twelve() {
        let backups = daily_for(400);
        let expired = Retention::default().expired(&backups);
        let kept: Vec<_> = backups
            .iter()
            .filter(|(l, _)| !expired.contains(&l.as_str()))
            .collect();
        // 7 days, plus older week-ends, plus older month-ends; overlaps counted once.
        assert!(
            kept.len() >= 12 && kept.len() <= 7 + 4 + 12,
            "{}",
            kept.len()
        );
        // The last 7 days are all kept.
        for (l, _) in &backups[backups.len() - 7..] {
            assert!(!expired.contains(&l.as_str()), "{l}");
        }
        // Nothing older than about 12 months survives.
        let oldest_kept = kept.iter().map(|(_, t)| *t).min().unwrap();
        assert!(backups.last().unwrap().1 - oldest_kept < Duration::days(366));
    }

    proptest! {
        #[test]
        fn the_newest_is_always_kept_and_nothing_kept_is_listed(
            offsets in proptest::collection::vec(0i64..(3 * 365 * 24), 1..60),
            daily in 0usize..10, weekly in 0usize..6, monthly in 0usize..14,
        ) {
            let start = time::macros::datetime!(2024-01-01 00:00 UTC);
            let backups: Vec<(String, OffsetDateTime)> = offsets
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("b{i:03}"), start + Duration::hours(*h)))
                .collect();
            let policy = Retention { daily, weekly, monthly };
            let expired = policy.expired(&backups);
            let newest = backups.iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))).unwrap();
            prop_assert!(!expired.contains(&newest.0.as_str()));
            prop_assert!(backups.len() - expired.len() <= 1 + daily + weekly + monthly);
            // The newest backup of each of the last `daily` days is kept.
            let mut days: Vec<_> = backups.iter().map(|(_, t)| t.date()).collect();
            days.sort();
            days.dedup();
            for day in days.iter().rev().take(daily) {
                let newest_of_day = backups.iter().filter(|(_, t)| t.date() == *day)
                    .max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))).unwrap();
                prop_assert!(!expired.contains(&newest_of_day.0.as_str()));
            }
        }
    }
}
