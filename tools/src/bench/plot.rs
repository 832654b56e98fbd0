//! `--plot DIR`: SVG charts of `bench ring` (throughput against message
//! size, 1 and 2 CPUs, the memcpy lines and Xen 4.17's ratio marked) and
//! `bench net` (the raw ring, guest-to-guest TCP and host-to-guest TCP).
//! Medians, with the windows' min–max as error bars where there are windows.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{NetReport, RingResult, XEN_RATIO_64};

/// The file `bench ring --plot DIR` writes in `DIR`.
pub const RING_PLOT: &str = "bench-ring.svg";
/// The file `bench net --plot DIR` writes in `DIR`.
pub const NET_PLOT: &str = "bench-net.svg";
/// The y-axis label of both charts.
pub const Y_LABEL: &str = "throughput, MiB/s (median; bars: min–max of the windows)";
/// The x-axis label of the ring chart.
pub const RING_X_LABEL: &str = "message size, bytes (log2)";
/// The x-axis label of the net chart.
pub const NET_X_LABEL: &str = "path (4 KiB ring messages, 2 CPUs)";

/// A chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The directory could not be made.
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Nothing to plot.
    #[error("{0}: nothing to plot")]
    Empty(String),
    /// The drawing failed.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

fn draw_err(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError::Draw {
        path: path.to_owned(),
        message,
    }
}

/// Makes `dir` and returns `dir/name`.
fn target(dir: &Path, name: &str) -> Result<PathBuf, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    Ok(dir.join(name))
}

const COLOURS: [RGBColor; 2] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28)];

/// Writes `dir/`[`RING_PLOT`]: ring MiB/s (median, min–max bars) against
/// message size on a log2 axis, for each CPU count, each with its memcpy
/// (dashed) and, on 2 CPUs, the cross-CPU copy reference (triangles), and Xen 4.17's ratio (0.264 × memcpy at 4 KiB, 64 slots) as a
/// cross on each memcpy. Returns the file.
pub fn ring_plot(results: &[RingResult], dir: &Path) -> Result<PathBuf, PlotError> {
    if results.is_empty() {
        return Err(PlotError::Empty("bench ring".into()));
    }
    let path = target(dir, RING_PLOT)?;
    draw_ring(results, &path)?;
    Ok(path)
}

fn draw_ring(results: &[RingResult], path: &Path) -> Result<(), PlotError> {
    let e = draw_err(path);
    // x is log2 of the size, labelled with the size.
    let lx = |size: u64| (size.max(1) as f64).log2();
    let xs = results.iter().map(|r| lx(r.size));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let top = results
        .iter()
        .map(|r| {
            let x = r.xcopy_mib_s.as_ref().map_or(0.0, |x| x.max);
            r.mib_s.max.max(r.memcpy_mib_s.max).max(x)
        })
        .fold(0.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "parapet bench ring: byte channel vs memcpy",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0.floor() - 0.5..x1.ceil() + 0.5, 0.0..top.max(1.0))
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(RING_X_LABEL)
        .y_desc(Y_LABEL)
        .x_labels((x1.ceil() - x0.floor()) as usize + 2)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", 2f64.powf(x.round()) as u64)
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|x| e(x.to_string()))?;
    let mut cpus: Vec<u32> = results.iter().map(|r| r.cpus).collect();
    cpus.sort_unstable();
    cpus.dedup();
    for (i, &n) in cpus.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut rows: Vec<&RingResult> = results.iter().filter(|r| r.cpus == n).collect();
        rows.sort_by_key(|r| r.size);
        let cpu = if n == 1 {
            "1 CPU".into()
        } else {
            format!("{n} CPUs")
        };
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|r| (lx(r.size), r.mib_s.median)),
                colour.stroke_width(2),
            ))
            .map_err(|x| e(x.to_string()))?
            .label(format!("ring, {cpu}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                rows.iter()
                    .map(|r| Circle::new((lx(r.size), r.mib_s.median), 3, colour.filled())),
            )
            .map_err(|x| e(x.to_string()))?;
        // min–max of the windows.
        chart
            .draw_series(rows.iter().map(|r| {
                PathElement::new(
                    vec![(lx(r.size), r.mib_s.min), (lx(r.size), r.mib_s.max)],
                    colour,
                )
            }))
            .map_err(|x| e(x.to_string()))?;
        // The memcpy, dashed (drawn as short segments).
        let memcpy: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (lx(r.size), r.memcpy_mib_s.median))
            .collect();
        chart
            .draw_series(memcpy.windows(2).flat_map(|w| {
                let ((xa, ya), (xb, yb)) = (w[0], w[1]);
                (0..8).filter(|k| k % 2 == 0).map(move |k| {
                    let t = |k: f64| {
                        let f = k / 8.0;
                        (xa + (xb - xa) * f, ya + (yb - ya) * f)
                    };
                    PathElement::new(vec![t(k as f64), t(k as f64 + 1.0)], colour)
                })
            }))
            .map_err(|x| e(x.to_string()))?
            .label(format!("memcpy, {cpu} (dashed)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], colour));
        // The cross-CPU copy reference (2 CPUs), a thin line with triangles.
        let xcopy: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((lx(r.size), r.xcopy_mib_s.as_ref()?.median)))
            .collect();
        if !xcopy.is_empty() {
            chart
                .draw_series(LineSeries::new(xcopy.iter().copied(), colour.mix(0.6)))
                .map_err(|x| e(x.to_string()))?;
            chart
                .draw_series(
                    xcopy
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 4, colour.filled())),
                )
                .map_err(|x| e(x.to_string()))?
                .label(format!("cross-CPU copy, {cpu} (triangles)"))
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 4, colour.filled()));
        }
        if let Some(r) = rows.iter().find(|r| r.size == 4096) {
            let y = r.memcpy_mib_s.median * XEN_RATIO_64;
            chart
                .draw_series(std::iter::once(Cross::new(
                    (lx(4096), y),
                    7,
                    colour.stroke_width(2),
                )))
                .map_err(|x| e(x.to_string()))?
                .label(format!(
                    "Xen 4.17 at 4 KiB, 64 slots: {XEN_RATIO_64} × memcpy ({cpu})"
                ))
                .legend(move |(x, y)| Cross::new((x + 10, y), 5, colour.stroke_width(2)));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// Writes `dir/`[`NET_PLOT`]: a bar per path of `bench net` (the median
/// MiB/s of the receiver's windows by its counter, their min–max as a
/// whisker).
/// Returns the file.
pub fn net_plot(report: &NetReport, dir: &Path) -> Result<PathBuf, PlotError> {
    if report.results.is_empty() {
        return Err(PlotError::Empty("bench net".into()));
    }
    let path = target(dir, NET_PLOT)?;
    draw_net(report, &path)?;
    Ok(path)
}

fn draw_net(report: &NetReport, path: &Path) -> Result<(), PlotError> {
    let e = draw_err(path);
    let n = report.results.len();
    let top = report
        .results
        .iter()
        .map(|r| r.mib_s.max.max(r.mib_s.median))
        .fold(0.0, f64::max)
        * 1.15;
    let names: Vec<String> = report
        .results
        .iter()
        .map(|r| match r.name.as_str() {
            "guest_to_guest_tcp" => "guest to guest, TCP".to_owned(),
            "host_to_guest_tcp" => "host to guest, TCP".to_owned(),
            "host_to_driver_uplink_only" => "host to driver domain (QEMU)".to_owned(),
            other if other.starts_with("ring_") => "raw ring, same work".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let root = SVGBackend::new(path, (800, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "parapet bench net (guest-to-guest TCP / raw ring: {:.4})",
                report.ratio_tcp_to_ring
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top.max(1.0))
        .map_err(|x| e(x.to_string()))?;
    let labels = names.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_desc(NET_X_LABEL)
        .y_desc(Y_LABEL)
        .x_label_formatter(&move |x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(report.results.iter().enumerate().map(|(i, r)| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.3, 0.0), (x + 0.3, r.mib_s.median)],
                COLOURS[0].mix(0.7).filled(),
            )
        }))
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(report.results.iter().enumerate().map(|(i, r)| {
            PathElement::new(
                vec![(i as f64, r.mib_s.min), (i as f64, r.mib_s.max)],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(report.results.iter().enumerate().map(|(i, r)| {
            Text::new(
                format!("{:.1}", r.mib_s.median),
                // Above the bar's whisker (text hangs below its anchor).
                (i as f64 - 0.1, r.mib_s.max + top * 0.06),
                ("sans-serif", 14),
            )
        }))
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ring::tests::size_lines;
    use crate::bench::{ring_run, NetResult};

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("parapet-plot-{name}-{}", std::process::id()))
    }

    /// Looks like an SVG document: a root element, balanced, with the text.
    fn check_svg(text: &str, needles: &[&str]) {
        assert!(
            text.trim_start().starts_with("<svg"),
            "{}",
            &text[..100.min(text.len())]
        );
        assert!(text.trim_end().ends_with("</svg>"));
        assert_eq!(text.matches("<svg").count(), text.matches("</svg>").count());
        let opens = text.matches("<text").count();
        assert!(opens > 0 && opens == text.matches("</text>").count());
        for n in needles {
            // Text is escaped as XML.
            let escaped = n.replace('&', "&amp;");
            assert!(text.contains(&escaped), "no {n:?} in the SVG");
        }
    }

    fn ring_results() -> Vec<RingResult> {
        let mut out = Vec::new();
        for cpus in [1, 2] {
            let mut lines = Vec::new();
            for (size, mib) in [(64, 1), (4096, 3), (65536, 4)] {
                lines.extend(size_lines(
                    size,
                    &[mib, mib + cpus as u64, mib, mib, mib],
                    8,
                    "copy",
                ));
                for n in 0..5 {
                    if cpus == 2 {
                        lines.push(format!(
                            "[ring-rx] bench ring xcopy size={size} n={n} bytes={} \
                             ticks=15625000 freq=62500000",
                            6u64 << 20
                        ));
                    }
                }
            }
            lines.push("[ring-rx] bench ring done sizes=3".into());
            out.extend(ring_run(cpus, &lines).unwrap());
        }
        out
    }

    #[test]
    fn the_ring_plot_is_an_svg_with_its_axes() {
        let dir = tmp("ring");
        let path = ring_plot(&ring_results(), &dir).unwrap();
        assert_eq!(path, dir.join(RING_PLOT));
        let text = std::fs::read_to_string(&path).unwrap();
        check_svg(
            &text,
            &[
                RING_X_LABEL,
                Y_LABEL,
                "ring, 1 CPU",
                "ring, 2 CPUs",
                "memcpy, 2 CPUs (dashed)",
                "cross-CPU copy, 2 CPUs (triangles)",
                "Xen 4.17 at 4 KiB, 64 slots: 0.264",
                "\n4096\n",
                "\n65536\n",
            ],
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(ring_plot(&[], &dir), Err(PlotError::Empty(_))));
    }

    #[test]
    fn the_net_plot_is_an_svg_with_its_bars() {
        let mut lines = size_lines(4096, &[1, 2, 3, 4, 5], 4, "net");
        lines.push("[ring-rx] bench ring done sizes=1".into());
        let r = crate::bench::net_ring(&lines).unwrap();
        let ring = NetResult::ring(&r, "s.toml", vec![]);
        let mut g2g = ring.clone();
        g2g.name = "guest_to_guest_tcp".into();
        g2g.mib_s = crate::bench::Figure::of(vec![0.5, 0.4, 0.6, 0.5, 0.5]).unwrap();
        let mut h2g = g2g.clone();
        h2g.name = "host_to_guest_tcp".into();
        let report = NetReport::new("c".into(), "k".into(), ring, g2g, h2g);
        let dir = tmp("net");
        let path = net_plot(&report, &dir).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        check_svg(
            &text,
            &[
                NET_X_LABEL,
                Y_LABEL,
                "raw ring, same work",
                "guest to guest, TCP",
                "host to guest, TCP",
                "0.0417",
                "12.0",
            ],
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
