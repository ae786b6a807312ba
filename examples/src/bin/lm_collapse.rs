//! §4.3, Fig. 13 and App. A.4 of the paper: a small GPT trained with the collapse-aware loss,
//! counting the tokens whose loss is exactly zero (and which they are), and comparing the
//! mean logit and `||W_G||` with the loss in f32 or f64, a bf16 model (cuda), and the output
//! embedding's mean removed in training (the centered head) or at evaluation only.
//!
//! `cargo run --release -p slingshot-examples --bin lm-collapse` runs the tiny CPU preset on
//! the built-in corpus; `--preset paper --backend cuda --corpus DIR` runs App. D Table 4.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::exit_code;
use slingshot_experiments::lm::cli::{LmArgs, LmArmTask, main_run};
use slingshot_experiments::run::child_entry;

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A small GPT's softmax collapse, top collapsed tokens and logit growth by loss precision.
#[derive(Debug, Parser)]
#[command(name = "lm-collapse", version)]
struct Cli {
    #[command(flatten)]
    lm: LmArgs,
}

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<LmArmTask>() {
        return code;
    }
    exit_code(main_run(&Cli::parse().lm))
}
