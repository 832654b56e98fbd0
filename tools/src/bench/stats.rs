//! Wall-clock figures: every one is the median of at least [`MIN_WINDOWS`]
//! windows of at least [`MIN_WINDOW_MS`] of guest time each, kept with its
//! minimum, maximum and every sample.

use serde::Serialize;

use super::BenchError;

/// Windows a wall-clock figure needs, at least.
pub const MIN_WINDOWS: usize = 5;
/// Guest time each window needs, at least, in milliseconds.
pub const MIN_WINDOW_MS: u64 = 250;

/// One window as the guest printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Window<'a> {
    /// The console line, for errors.
    pub line: &'a str,
    /// Counter ticks the window took.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// What the window measured (e.g. MiB/s).
    pub value: f64,
}

impl<'a> Window<'a> {
    /// A window's throughput in MiB/s: `bytes` in `ticks` of a `freq` Hz
    /// counter.
    pub fn mib_s(line: &'a str, bytes: u64, ticks: u64, freq: u64) -> Self {
        let secs = ticks as f64 / freq.max(1) as f64;
        Window {
            line,
            ticks,
            freq,
            value: bytes as f64 / secs / super::MIB,
        }
    }
}

/// A figure over windows: median, min, max and every sample, in the order
/// measured. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// The median (the mean of the two middle samples for an even count).
    pub median: f64,
    /// The least sample.
    pub min: f64,
    /// The greatest sample.
    pub max: f64,
    /// Every sample, in the order measured.
    pub samples: Vec<f64>,
}

impl Figure {
    /// The figure of `samples` (at least one; not checked for windows: see
    /// [`figure`]).
    pub fn of(samples: Vec<f64>) -> Option<Figure> {
        let median = median(&samples)?;
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Figure {
            median,
            min,
            max,
            samples,
        })
    }

    /// `median (min–max)` with `decimals` decimals.
    pub fn text(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// The median of `v`: the middle sample, or the mean of the two middle ones
/// for an even count; `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The figure `what` over `windows`: at least [`MIN_WINDOWS`] of them, each
/// at least [`MIN_WINDOW_MS`] long (an error names the short one's line).
pub fn figure(what: &str, windows: &[Window<'_>]) -> Result<Figure, BenchError> {
    if windows.len() < MIN_WINDOWS {
        return Err(BenchError::TooFewWindows {
            what: what.to_owned(),
            found: windows.len(),
            needed: MIN_WINDOWS,
        });
    }
    for w in windows {
        // ticks / freq >= MIN_WINDOW_MS / 1000, in integers.
        if w.freq == 0
            || u128::from(w.ticks) * 1000 < u128::from(w.freq) * u128::from(MIN_WINDOW_MS)
        {
            return Err(BenchError::ShortWindow {
                line: w.line.to_owned(),
                ms: if w.freq == 0 {
                    "(no frequency)".to_owned()
                } else {
                    format!("{:.1}", w.ticks as f64 * 1000.0 / w.freq as f64)
                },
                needed_ms: MIN_WINDOW_MS,
            });
        }
    }
    // Not empty: checked above.
    Figure::of(windows.iter().map(|w| w.value).collect()).ok_or_else(|| BenchError::TooFewWindows {
        what: what.to_owned(),
        found: 0,
        needed: MIN_WINDOWS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: &str, ticks: u64, value: f64) -> Window<'_> {
        Window {
            line,
            ticks,
            freq: 1000,
            value,
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[9.0, 1.0, 8.0, 2.0, 7.0, 100.0]), Some(7.5));
        let f = Figure::of(vec![2.0, 9.0, 1.0, 4.0, 3.0]).unwrap();
        assert_eq!((f.median, f.min, f.max), (3.0, 1.0, 9.0));
        assert_eq!(
            f.samples,
            [2.0, 9.0, 1.0, 4.0, 3.0],
            "in the order measured"
        );
        assert_eq!(f.text(1), "3.0 (1.0–9.0)");
    }

    #[test]
    fn five_windows_of_250_ms_make_a_figure() {
        let lines = ["a", "b", "c", "d", "e", "f"];
        let ws: Vec<Window> = lines
            .iter()
            .zip([10.0, 30.0, 20.0, 50.0, 40.0, 60.0])
            .map(|(l, v)| w(l, 250, v))
            .collect();
        let f = figure("x", &ws[..5]).unwrap();
        assert_eq!((f.median, f.min, f.max), (30.0, 10.0, 50.0));
        let f = figure("x", &ws).unwrap();
        assert_eq!(f.median, 35.0);
        assert_eq!(f.samples.len(), 6);
    }

    #[test]
    fn too_few_or_too_short_windows_are_errors() {
        let ws: Vec<Window> = (0..4).map(|_| w("[rx] ok", 300, 1.0)).collect();
        let e = figure("ring MiB/s at 4096 B", &ws).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ring MiB/s at 4096 B: 4 window(s), at least 5 needed"
        );
        let mut ws: Vec<Window> = (0..5).map(|_| w("[rx] ok", 250, 1.0)).collect();
        ws[3] = w("[rx] bench ring window n=3 ticks=249", 249, 1.0);
        let e = figure("x", &ws).unwrap_err();
        assert_eq!(
            e.to_string(),
            "window of 249.0 ms, at least 250 ms needed: \
             [rx] bench ring window n=3 ticks=249"
        );
        ws[3].freq = 0;
        ws[3].ticks = 5000;
        assert!(matches!(
            figure("x", &ws),
            Err(BenchError::ShortWindow { .. })
        ));
    }
}
