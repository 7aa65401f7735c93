//! The publication variant (figures/paper/<id>.pdf and .png): same data,
//! same bytes; its size, text sizes, font and metadata; and `--check`
//! comparing the committed files.

mod common;

use learning_dynamics::figure::FigureData;
use learning_dynamics::spec::{PublicationSpec, PublicationWidth};
use learning_dynamics::{check, pipeline, publication};
use sha2::{Digest, Sha256};

/// A small figure of every style (line with a band, theory, points with
/// labels, area, arrows), on a linear and a log-log panel, made by hand so
/// that its bytes depend on the drawing code only, not on training.
fn figure() -> FigureData {
    let xs: Vec<f64> = (0..40).map(|i| 0.1 * 1.2f64.powi(i)).collect();
    let fall: Vec<f64> = xs.iter().map(|x| 1.0 / (1.0 + x)).collect();
    serde_json::from_value(serde_json::json!({
        "id": "test-figure",
        "title": "A test figure",
        "caption": "Not drawn in the publication variant.",
        "provenance": {
            "key": "ab".repeat(32), "code_fingerprint": "cd".repeat(32), "commit": "0123456", "dirty": false,
            "config": {"learning_rate": 0.1}, "seeds": [1, 2], "toolchain": "rustc"
        },
        "panels": [
            {"title": "a linear panel whose title is long enough to wrap onto a second line",
             "x_label": "x", "y_label": "y", "x_log": false, "y_log": false, "x_range": null, "y_range": null},
            {"title": "log-log", "x_label": "time t = lr x step", "y_label": "loss (a long label that wraps)",
             "x_log": true, "y_log": true, "x_range": null, "y_range": null}
        ],
        "series": [
            {"name": "region (theory)", "panel": 0, "source": "theory", "style": "area", "color": "#009E73",
             "legend": true, "x": [0.0, 1.0, 1.0, 0.0], "y": [0.0, 0.0, 1.0, 1.0], "band": null},
            {"name": "flow (theory)", "panel": 0, "source": "theory", "style": "arrows", "color": "#777777",
             "legend": false, "x": [0.2, 0.4], "y": [0.2, 0.5], "band": null},
            {"name": "starts", "panel": 0, "source": "measured", "style": "points", "color": "#000000",
             "legend": true, "x": [0.3, 0.7], "y": [0.6, 0.3], "band": null, "labels": ["c1", "c2"]},
            {"name": "measured, mean over seeds", "panel": 1, "source": "measured", "style": "line",
             "color": "#0072B2", "legend": true, "x": xs, "y": fall,
             "band": {"what": "min-max over 2 seeds", "lo": fall.iter().map(|y| y * 0.9).collect::<Vec<_>>(),
                      "hi": fall.iter().map(|y| y * 1.1).collect::<Vec<_>>()}},
            {"name": "measured (theory)", "panel": 1, "source": "theory", "style": "line", "color": "#000000",
             "legend": true, "x": xs, "y": fall, "band": null}
        ],
        "scalars": {},
        "divergences": [],
        "claims": []
    }))
    .unwrap()
}

fn spec(width: PublicationWidth) -> PublicationSpec {
    PublicationSpec { width }
}

#[test]
fn same_data_same_bytes() {
    let fig = figure();
    for width in [PublicationWidth::Column, PublicationWidth::Page] {
        let a = publication::export(&fig, &spec(width)).unwrap();
        // Several times: a HashMap's order (svg2pdf writes resources from one)
        // differs between instances, so one repeat could pass by chance.
        for _ in 0..4 {
            let b = publication::export(&fig, &spec(width)).unwrap();
            assert!(a.pdf == b.pdf, "two PDFs of the same data differ");
            assert!(a.png == b.png, "two PNGs of the same data differ");
        }
        // Through the JSON, as `figures` and `--check` draw them.
        let c = publication::from_json(&serde_json::to_string_pretty(&fig).unwrap(), &spec(width)).unwrap();
        assert!(a == c, "drawn from its JSON, the figure gives other bytes");
    }
}

#[test]
fn sized_in_inches_with_the_font_embedded_and_the_provenance_in_the_metadata() {
    let fig = figure();
    let column = publication::export(&fig, &spec(PublicationWidth::Column)).unwrap();
    let page = publication::export(&fig, &spec(PublicationWidth::Page)).unwrap();
    assert!((column.inches.0 - 3.3).abs() < 1e-9 && (page.inches.0 - 6.8).abs() < 1e-9, "{column:?}");
    let pdf = String::from_utf8_lossy(&column.pdf);
    assert!(pdf.contains("/MediaBox [0 0 237.6 "), "a 3.3 in page is 237.6 pt wide");
    assert!(pdf.contains("/FontFile2"), "the font program is embedded");
    assert!(pdf.contains("+DejaVuSans"), "as a subset of the shipped font");
    for date in ["/CreationDate", "/ModDate", "/ID"] {
        assert!(!pdf.contains(date), "{date} would make the bytes differ run to run");
    }
    assert!(pdf.contains(&format!("key={}", fig.provenance.key)), "the key is in the PDF's keywords");
    assert!(pdf.contains("cargo xtask figures --only test-figure"), "and how to regenerate it");

    // 300 dpi: 3.3 in is 990 pixels, and the PNG says so (pHYs, pixels per metre).
    let png = &column.png;
    assert_eq!(&png[1..4], b"PNG");
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!(w, 990);
    assert_eq!(h as f64, (column.inches.1 * 300.0).ceil());
    let at = png.windows(4).position(|c| c == b"pHYs").expect("a pHYs chunk");
    assert_eq!(u32::from_be_bytes(png[at + 4..at + 8].try_into().unwrap()), 11811);
    let text = String::from_utf8_lossy(png);
    assert!(text.contains(&format!("key={}", fig.provenance.key)), "the key is in the PNG's text");
}

/// Every piece of text is set at 7 to 9 points at the final size.
#[test]
fn text_is_seven_to_nine_points() {
    for width in [PublicationWidth::Column, PublicationWidth::Page] {
        let svg = publication::svg(&figure(), &spec(width)).unwrap();
        let sizes: Vec<f64> = svg
            .split("font-size=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].parse::<f64>().unwrap() / publication::UNITS_PER_PT)
            .collect();
        assert!(sizes.len() > 10, "{sizes:?}");
        for pt in sizes {
            assert!((7.0..=9.0).contains(&pt), "text at {pt} pt");
        }
        for text in ["A test figure", "Not drawn", "CLAIMS", "key"] {
            assert!(!svg.contains(text), "{text:?} belongs in the caption or the metadata, not on the page");
        }
    }
}

/// Pinned: a change to the drawing, the font or the crates that changes the
/// bytes shows here. Look at the new output (render a PNG and view it), then
/// update the hashes.
#[test]
fn pinned_bytes() {
    let export = publication::export(&figure(), &spec(PublicationWidth::Column)).unwrap();
    let hash = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    assert_eq!(
        (hash(&export.pdf).as_str(), hash(&export.png).as_str()),
        (
            "29fb9d92d48018c3b0638297a347b30b45c13a1c0994c89cd8c906b746b6c163",
            "7dbd1ee9a20292820d047242ba7e1423319b5e933435545eb77e9d2ad66cb64f"
        ),
        "the publication bytes changed"
    );
}

#[test]
fn check_compares_the_committed_publication_files() {
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let run = common::run(&paper, dir.path(), 2);
    let out = dir.path().join("figures");
    pipeline::write(&out, &run).unwrap();
    assert!(check::against_committed(&out, &run).is_empty());
    let [pdf, png] = pipeline::publication_paths(&out, "sigmoid-error");
    assert!(pdf.exists() && png.exists());

    // A stale PNG and a missing PDF are reported, by path.
    let mut bytes = std::fs::read(&png).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(&png, bytes).unwrap();
    std::fs::remove_file(&pdf).unwrap();
    let problems = check::against_committed(&out, &run);
    let diffs = problems["sigmoid-error"].join("\n");
    assert!(diffs.contains("sigmoid-error.png differs from what its JSON draws now"), "{diffs}");
    assert!(diffs.contains("cannot read") && diffs.contains("sigmoid-error.pdf"), "{diffs}");
    assert!(!problems.contains_key("phase-diagram"));

    // A publication file of a figure the spec no longer has is an orphan.
    std::fs::write(out.join("paper").join("gone.pdf"), b"%PDF").unwrap();
    assert!(check::orphans(&paper, &out).contains(&out.join("paper").join("gone.pdf")));
}
