//! The seeded runs.

use std::path::Path;

/// A xorshift64* stream: the same bytes on every run and every machine.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An input of 0 to `max` bytes.
    fn input(&mut self, max: usize) -> Vec<u8> {
        let len = usize::try_from(self.next() % (max as u64 + 1)).unwrap();
        (0..len).map(|_| self.next().to_le_bytes()[3]).collect()
    }
}

/// The seeds of a target, then `cases` generated inputs; returns how many reached the deep
/// end of the oracle, after checking each.
fn run(target: &str, seed: u64, cases: usize, max_len: usize, check: fn(&[u8]) -> bool) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 3,
        "{target}: too few seeds in {}",
        dir.display()
    );
    let mut deep = 0;
    for path in &seeds {
        deep += usize::from(check(&std::fs::read(path).unwrap()));
    }
    let mut rng = Seeded(seed);
    for _ in 0..cases {
        deep += usize::from(check(&rng.input(max_len)));
    }
    deep
}

#[test]
fn config_loader_oracle_holds_on_seeded_inputs() {
    let loaded = run("config_load", 0x11, 400, 200, super::config::check);
    assert!(loaded >= 10, "only {loaded} configs loaded");
}

#[test]
fn exec_frame_decoder_oracle_holds_on_seeded_inputs() {
    let exited = run("exec_frames", 0x22, 300, 120, super::exec::check);
    assert!(
        exited >= 20,
        "only {exited} sessions ended with an exit code"
    );
}

#[test]
fn fetch_extraction_oracle_holds_on_seeded_inputs() {
    let extracted = run("fetch_extract", 0x33, 400, 120, super::fetch::check);
    assert!(extracted >= 20, "only {extracted} archives extracted");
}

#[test]
fn recipe_decoding_oracle_holds_on_seeded_inputs() {
    let decoded = run("recipe_decode", 0x44, 400, 120, super::recipe::check);
    assert!(decoded >= 200, "only {decoded} values decoded");
}

#[test]
fn template_renderer_oracle_holds_on_seeded_inputs() {
    let compared = run("template_render", 0x55, 2000, 300, super::template::check);
    assert!(
        compared >= 200,
        "only {compared} renderings compared as documents"
    );
}

/// A placeholder inside an HCL directive (`%{ if }…%{ endif }`) of a quoted string is compared
/// too, with hostile values: the oracle reads the directive's body as HCL does (escapes
/// decoded), where `hcl-edit` keeps that text raw.
#[test]
fn template_oracle_compares_values_inside_directives() {
    use leasebox::backends::nomad::template::{PLACEHOLDERS, TemplateFormat};
    let hostile = [
        "\"\\\\$",
        "${x}",
        "%{ endif }",
        "a\nb\t\u{1}",
        "\\u0041",
        "",
    ];
    for value in hostile {
        let values: Vec<String> = PLACEHOLDERS.iter().map(|_| value.to_owned()).collect();
        for text in [
            "b = \"%{ if true }{{task}}%{ endif }\"\n",
            "b = \"x %{ if var.y }{{owner}}\\\"%{ else }[{{lease_id}}]%{ endif } z\"\n",
            "b = \"%{ for k, v in var.m }{{task}}${v}%{ endfor }\"\n",
        ] {
            assert!(
                super::template::check_template(text, TemplateFormat::Hcl, &values),
                "not compared as documents: {text:?} with {value:?}"
            );
        }
    }
}
