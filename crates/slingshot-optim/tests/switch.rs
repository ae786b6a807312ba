//! The mid-run switch: Adam's steps before, plain gradient descent at lr 1e5 after, to the bit.

mod common;

use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use common::{Ad, Inner, Mlp, bits, mlp, mlp_grads};
use slingshot_optim::{ProbedAdamConfig, SwitchOptimizer};

/// `w - lr * g` for every parameter, in module order, as bits: the gradient descent step
/// computed by hand with burn's operations.
fn descent_bits(model: &Mlp<Ad>, grads: &GradientsParams, lr: f64) -> Vec<Vec<u32>> {
    fn step<const D: usize>(w: Tensor<Inner, D>, g: Tensor<Inner, D>, lr: f64) -> Vec<u32> {
        let new = w - g.mul_scalar(lr);
        new.into_data().iter::<f32>().map(f32::to_bits).collect()
    }
    let (hidden_bias, out_bias) = (
        model.hidden.bias.as_ref().unwrap(),
        model.out.bias.as_ref().unwrap(),
    );
    let g2 = |id| grads.get::<Inner, 2>(id).unwrap();
    let g1 = |id| grads.get::<Inner, 1>(id).unwrap();
    vec![
        step(
            model.hidden.weight.val().inner(),
            g2(model.hidden.weight.id),
            lr,
        ),
        step(hidden_bias.val().inner(), g1(hidden_bias.id), lr),
        step(model.out.weight.val().inner(), g2(model.out.weight.id), lr),
        step(out_bias.val().inner(), g1(out_bias.id), lr),
    ]
}

#[test]
fn after_the_switch_a_step_is_exactly_param_minus_lr_grad() {
    let adam = ProbedAdamConfig::new().with_epsilon(1e-8).init();
    let mut optim = SwitchOptimizer::new(adam, SgdConfig::new().init());
    let mut model = mlp(3);
    let mut alone = ProbedAdamConfig::new()
        .with_epsilon(1e-8)
        .init::<Ad, Mlp<Ad>>();
    let mut reference = model.clone();
    for step in 0..5 {
        let grads = mlp_grads(&model, step);
        model = optim.step(1e-3, model, grads);
        let grads = mlp_grads(&reference, step);
        reference = alone.step(1e-3, reference, grads);
    }
    assert_eq!(bits(&model), bits(&reference), "Adam's steps before");
    assert!(!optim.is_switched());

    optim.switch();
    assert!(optim.is_switched());
    let grads = mlp_grads(&model, 5);
    let expected = descent_bits(&model, &grads, 1e5);
    model = optim.step(1e5, model, grads);
    assert_eq!(bits(&model), expected);
}

#[test]
fn the_record_keeps_both_states_and_the_phase() {
    let adam = ProbedAdamConfig::new().init();
    let mut optim = SwitchOptimizer::new(adam, SgdConfig::new().init());
    let mut model = mlp(4);
    for step in 0..3 {
        let grads = mlp_grads(&model, step);
        model = optim.step(1e-3, model, grads);
    }
    optim.switch();
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(optim.to_record(), ()).unwrap();
    let fresh = SwitchOptimizer::new(ProbedAdamConfig::new().init(), SgdConfig::new().init());
    let mut resumed = fresh.load_record(recorder.load(bytes, &Default::default()).unwrap());
    assert!(resumed.is_switched());
    let grads = mlp_grads(&model, 3);
    let a = optim.step(1.0, model.clone(), grads);
    let grads = mlp_grads(&model, 3);
    let b = resumed.step(1.0, model, grads);
    assert_eq!(bits(&a), bits(&b));
}
