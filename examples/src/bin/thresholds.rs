//! Prints the softmax-collapse margins of every float format (paper §3.1, App. A.1.4), then
//! shows the collapse happen in a simulated f32 cross-entropy and the §4.1 Adam estimate.
//!
//! `cargo run -p slingshot-examples --bin thresholds -- --classes 2,97,50304`

use clap::Parser;
use slingshot::numerics::{
    AbsorptionThresholds, AdamHyper, BiasCorrection, CrossEntropySimulator, FloatFormat,
    SummationOrder, estimate_reemergence_update,
};

/// Softmax-collapse thresholds for every float format.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Class counts K to give the "certain" margin for (comma-separated, each >= 2).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 97, 50304])]
    classes: Vec<usize>,
    /// Formats to list (comma-separated: f64, f32, tf32, bf16, f16, e4m3, e5m2); all by default.
    #[arg(long, value_delimiter = ',')]
    format: Vec<FloatFormat>,
}

fn main() {
    let args = Args::parse();
    if let Err(message) = run(&args) {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let formats = if args.format.is_empty() {
        FloatFormat::ALL.to_vec()
    } else {
        args.format.clone()
    };
    if let Some(&k) = args.classes.iter().find(|&&k| k < 2) {
        return Err(format!(
            "--classes: class count must be at least 2, got {k}"
        ));
    }

    println!("Formats (p counts the implicit bit; u = 2^-p is the unit roundoff)\n");
    println!(
        "{:<6} {:>3} {:>3} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "format", "E", "p", "epsilon", "u", "min normal", "min subn.", "max finite"
    );
    for f in &formats {
        println!(
            "{:<6} {:>3} {:>3} {:>11.4e} {:>11.4e} {:>11.4e} {:>11.4e} {:>11.4e}",
            f.name(),
            f.exponent_bits(),
            f.precision(),
            f.epsilon(),
            f.unit_roundoff(),
            f.min_positive_normal(),
            f.min_positive_subnormal(),
            f.max_finite()
        );
    }

    print_margins(&formats, &args.classes)?;
    print_simulation()?;
    print_section_4_1()
}

/// The margins at which each format collapses, for each class count.
fn print_margins(formats: &[FloatFormat], classes: &[usize]) -> Result<(), String> {
    println!("\nSoftmax-collapse margins z_r - max_(k!=r) z_k (natural-log units)\n");
    print!("{:<6} {:>10} {:>12}", "format", "paper", "impossible<");
    for k in classes {
        print!(" {:>12}", format!("certain K={k}"));
    }
    println!(" {:>10} {:>10}", "underflow", "p_k = 0");
    for &f in formats {
        let first = AbsorptionThresholds::new(f, classes[0]).map_err(|e| e.to_string())?;
        print!(
            "{:<6} {:>10.4} {:>12.4}",
            f.name(),
            first.paper,
            first.impossible_below
        );
        for &k in classes {
            let t = AbsorptionThresholds::new(f, k).map_err(|e| e.to_string())?;
            print!(" {:>12.4}", t.certain_at);
        }
        println!(
            " {:>10.4} {:>10.4}",
            first.underflow, first.zero_probability
        );
    }
    println!(
        "\npaper: (p-1) ln 2 (§3.1). impossible<: no summation order collapses below it (~ p ln 2).\n\
         certain: every order collapses at or above it (~ p ln 2 + ln(K-1)); between the two the\n\
         order decides. underflow: exp(-m) below the smallest subnormal (App. A.1.4).\n\
         p_k = 0: a wrong-class probability rounds to exactly zero."
    );
    Ok(())
}

/// The f32 loss and gradients of `[m, 0, 0]` around the collapse margin.
fn print_simulation() -> Result<(), String> {
    println!("\nf32 cross-entropy of logits [m, 0, 0], target 0, summed sequentially\n");
    println!(
        "{:>4} {:>14} {:>14} {:>14} {:>10}",
        "m", "loss", "grad correct", "grad wrong", "collapsed"
    );
    let sim = CrossEntropySimulator::new(FloatFormat::F32, SummationOrder::Sequential);
    for m in [15.0, 16.0, 17.0, 20.0, 30.0] {
        let r = sim.simulate(&[m, 0.0, 0.0], 0).map_err(|e| e.to_string())?;
        println!(
            "{:>4} {:>14.6e} {:>14.6e} {:>14.6e} {:>10}",
            m,
            r.loss,
            r.correct_class_gradient(),
            r.gradient[1],
            r.is_collapsed()
        );
    }
    Ok(())
}

/// §4.1's re-emergence update.
fn print_section_4_1() -> Result<(), String> {
    let h = AdamHyper::PAPER_SECTION_4_1;
    let e = estimate_reemergence_update(&h, 3e-9, 1.19e-7, BiasCorrection::None)
        .map_err(|e| e.to_string())?;
    println!(
        "\n§4.1: Adam (lr 1e-3, betas 0.9/0.95, eps 1e-8), gradient 3e-9 then 1.19e-7:\n\
         m = {:.3e}, sqrt(v) = {:.3e}, update = {:.3e} (effective LR {:.3e} of ceiling {:.0e})",
        e.m,
        e.sqrt_v,
        e.update,
        e.effective_lr,
        h.effective_lr_ceiling()
    );
    Ok(())
}
