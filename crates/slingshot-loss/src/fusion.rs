//! burn's `Fusion<CubeBackend<..>>` (the default `Wgpu` and `Cuda`): the loss runs on the inner
//! `CubeBackend`, whose tensors the fusion client resolves, and its outputs are registered back
//! as fusion tensors. So the fused CubeCL kernel runs under fusion too, and the f64 loss works
//! there: burn's fusion compiler has no f64 (it panics), while the inner backend does.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorMetadata, TensorPrimitive};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime};
use burn_fusion::stream::OperationStreams;
use burn_fusion::{FusionTensor, NoOp};
use burn_ir::{InitOperationIr, OperationIr, OperationOutput};

use crate::dispatch::{self, Inputs, same};
use crate::kernel::{Forward, GradParts, LossPlan};
use crate::{CollapseStats, LossError};

/// The inner backend the loss runs on: the primitive types are `CubeTensor<R>` whatever the
/// float and int elements, and `BT` is the outer backend's boolean storage.
type Inner<R, BT> = CubeBackend<R, f32, i32, BT>;
type FusionPrimitive<R> = FusionTensor<FusionCubeRuntime<R>>;

/// The loss on the inner backend when the logits are fusion tensors of an enabled CubeCL
/// runtime; else the inputs back.
pub(crate) fn try_forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Result<Forward<B>, LossError>, Inputs<B>> {
    crate::cube::each_runtime!(try_runtime::<B>(logits, targets, plan, need_grad))
}

fn try_runtime<B: Backend, R: CubeRuntime>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Result<Forward<B>, LossError>, Inputs<B>> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FusionPrimitive<R>>() {
        return Err((logits, targets));
    }
    let bools = TypeId::of::<B::BoolElem>();
    if bools == TypeId::of::<u8>() {
        Ok(bridged::<B, R, u8>(logits, targets, plan, need_grad))
    } else if bools == TypeId::of::<u32>() {
        Ok(bridged::<B, R, u32>(logits, targets, plan, need_grad))
    } else {
        Err((logits, targets))
    }
}

/// Resolves the inputs, runs the loss on [`Inner`], registers the outputs back.
fn bridged<B: Backend, R: CubeRuntime, BT: BoolElement>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Forward<B>, LossError> {
    let z: FusionPrimitive<R> = same(logits.into_primitive().tensor());
    let t: FusionPrimitive<R> = same(targets.into_primitive());
    let client = z.client.clone();
    let z = client.resolve_tensor_float::<Inner<R, BT>>(z);
    let t = client.resolve_tensor_int::<Inner<R, BT>>(t);
    let f = dispatch::forward::<Inner<R, BT>>(
        Tensor::from_primitive(TensorPrimitive::Float(z)),
        Tensor::from_primitive(t),
        plan,
        need_grad,
    )?;
    let bridge = Bridge::<R, BT>::new(client);
    Ok(Forward {
        loss: bridge.float(f.loss),
        grad: f.grad.map(|inner| {
            GradParts::Bridged(Arc::new(BridgedGrad {
                inner,
                bridge: bridge.clone(),
            }))
        }),
        stats: f.stats.map(|s| CollapseStats {
            collapsed: bridge.bool(s.collapsed),
            zero_loss: bridge.bool(s.zero_loss),
            margin: bridge.float(s.margin),
            residual_mass: bridge.float(s.residual_mass),
            log_sum_exp: bridge.float(s.log_sum_exp),
            batch: bridge.float(s.batch),
        }),
    })
}

/// Moves tensors between the inner backend and `B = Fusion<..>` on one fusion client.
struct Bridge<R: CubeRuntime, BT> {
    client: burn_fusion::Client<FusionCubeRuntime<R>>,
    _bools: std::marker::PhantomData<BT>,
}

impl<R: CubeRuntime, BT: BoolElement> Clone for Bridge<R, BT> {
    fn clone(&self) -> Self {
        Self::new(self.client.clone())
    }
}

impl<R: CubeRuntime, BT: BoolElement> Bridge<R, BT> {
    fn new(client: burn_fusion::Client<FusionCubeRuntime<R>>) -> Self {
        Self {
            client,
            _bools: std::marker::PhantomData,
        }
    }

    /// An inner tensor registered as a fusion tensor (burn-fusion's own `from_data` path).
    fn register(&self, tensor: CubeTensor<R>) -> FusionPrimitive<R> {
        let (shape, dtype) = (tensor.shape(), tensor.dtype());
        let handle = tensor.into();
        let desc =
            InitOperationIr::create(shape, dtype, || self.client.register_tensor_handle(handle));
        self.client
            .register(
                OperationStreams::default(),
                OperationIr::Init(desc),
                NoOp::<Inner<R, BT>>::new(),
            )
            .output()
    }

    fn float<B: Backend, const D: usize>(&self, x: Tensor<Inner<R, BT>, D>) -> Tensor<B, D> {
        let t = self.register(x.into_primitive().tensor());
        Tensor::from_primitive(TensorPrimitive::Float(same(t)))
    }

    fn bool<B: Backend, const D: usize>(
        &self,
        x: Tensor<Inner<R, BT>, D, Bool>,
    ) -> Tensor<B, D, Bool> {
        Tensor::from_primitive(same(self.register(x.into_primitive())))
    }

    fn resolve_float<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
    ) -> Tensor<Inner<R, BT>, D> {
        let t: FusionPrimitive<R> = same(x.into_primitive().tensor());
        let t = self.client.resolve_tensor_float::<Inner<R, BT>>(t);
        Tensor::from_primitive(TensorPrimitive::Float(t))
    }
}

/// The inner backend's gradient parts, computed there and registered back.
pub(crate) struct BridgedGrad<R: CubeRuntime, BT: BoolElement> {
    inner: GradParts<Inner<R, BT>>,
    bridge: Bridge<R, BT>,
}

impl<R: CubeRuntime, BT: BoolElement> fmt::Debug for BridgedGrad<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgedGrad")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<B: Backend, R: CubeRuntime, BT: BoolElement> crate::kernel::InnerGrad<B>
    for BridgedGrad<R, BT>
{
    fn gradient(&self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        let upstream = self.bridge.resolve_float(upstream);
        self.bridge.float(self.inner.clone().gradient(upstream))
    }
}
