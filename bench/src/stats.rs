//! Medians, percentiles and rates.

use std::time::Duration;

pub fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 0.5)
}

pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
    samples[index]
}

/// Items and bytes per second of one run.
#[derive(Clone, Copy)]
pub struct Rate {
    pub items_per_sec: f64,
    pub bytes_per_sec: f64,
}

impl Rate {
    pub fn new(items: u64, bytes: u64, took: Duration) -> Self {
        Rate {
            items_per_sec: items as f64 / took.as_secs_f64(),
            bytes_per_sec: bytes as f64 / took.as_secs_f64(),
        }
    }
}

pub fn median_rate(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.items_per_sec.total_cmp(&b.items_per_sec));
    rates[rates.len() / 2]
}
