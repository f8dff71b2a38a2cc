using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

/// <summary>
/// Gradient (activation) checkpointing, like PyTorch's reentrant <c>torch.utils.checkpoint.checkpoint</c>
/// (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"): the forward pass of a sub-network runs
/// without recording activations; backward runs it again with grad enabled and back-propagates through the
/// recomputation. Built on TorchSharp's custom autograd function, so it composes with ordinary
/// <c>loss.backward()</c>: gradients of inputs flow on, and gradients of the closure's parameters accumulate
/// into their <c>.grad</c> exactly as a plain backward would.
/// <para>RNG caveat: the recomputation draws fresh random numbers, so a sub-network with active dropout
/// (or any other randomness) would see different masks in backward; PyTorch replays the RNG state for that.
/// Stable Diffusion's UNet and CLIP use dropout 0, so nothing is replayed here: keep dropout at 0 (or the module
/// in eval mode) inside checkpointed blocks. Other caveats: the sub-network must be a pure function of its
/// inputs and parameters (no in-place changes of buffers), and its parameters must be passed in
/// <c>parameters</c>: a parameter missing there gets no gradient.</para>
/// </summary>
public static class GradientCheckpoint
{
    /// <summary>
    /// Runs <paramref name="fn"/> on <paramref name="inputs"/> checkpointed. <paramref name="parameters"/> are the
    /// parameters the function reads through its closure (typically <c>block.parameters()</c>); inputs that do not
    /// require grad (e.g. a timestep embedding of a frozen model, or encoder states) get no gradient. When grad
    /// mode is off, or nothing involved requires grad, <paramref name="fn"/> simply runs.
    /// </summary>
    public static Tensor Run(Func<Tensor[], Tensor> fn, IReadOnlyList<Parameter> parameters, params Tensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(fn);
        return RunMany(a => new[] { fn(a) }, parameters, inputs)[0];
    }

    /// <summary>
    /// As <see cref="Run"/> for a sub-network with several outputs (e.g. a UNet down block returning its hidden
    /// states and the residuals for the skip connections). Outputs must be tensors the function creates (an input
    /// returned unchanged is cloned); outputs that are not floating point carry no gradient.
    /// </summary>
    public static Tensor[] RunMany(Func<Tensor[], Tensor[]> fn, IReadOnlyList<Parameter> parameters, params Tensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(fn);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(inputs);
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i] is null || inputs[i].IsInvalid)
                throw new ArgumentException($"GradientCheckpoint input {i} is null or disposed.", nameof(inputs));
        var trainable = parameters.Where(p => p.requires_grad).ToArray();
        if (!torch.is_grad_enabled() || (trainable.Length == 0 && !inputs.Any(t => t.requires_grad)))
            return fn(inputs);
        // Slot 0 carries the closure (not a tensor: no gradient); inputs and parameters follow as graph inputs,
        // so the engine routes the parameter gradients returned by backward into their AccumulateGrad nodes.
        var args = new object[1 + inputs.Length + trainable.Length];
        args[0] = new Payload(fn, inputs.Length, trainable.Length);
        for (int i = 0; i < inputs.Length; i++) args[1 + i] = inputs[i];
        for (int i = 0; i < trainable.Length; i++) args[1 + inputs.Length + i] = trainable[i];
        return CheckpointFunction.apply(args).ToArray();
    }

    private sealed record Payload(Func<Tensor[], Tensor[]> Fn, int InputCount, int ParameterCount);

    private sealed class CheckpointFunction : torch.autograd.MultiTensorFunction<CheckpointFunction>
    {
        public override string Name => nameof(GradientCheckpoint);

        public override List<Tensor> forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var payload = (Payload)vars[0];
            var inputs = new Tensor[payload.InputCount];
            var needsGrad = new bool[payload.InputCount];
            for (int i = 0; i < inputs.Length; i++)
            {
                inputs[i] = (Tensor)vars[1 + i];
                needsGrad[i] = inputs[i].requires_grad;
            }
            var parameters = new Tensor[payload.ParameterCount];
            for (int i = 0; i < parameters.Length; i++) parameters[i] = (Tensor)vars[1 + payload.InputCount + i];
            ctx.save_data("payload", payload);
            ctx.save_data("needsGrad", needsGrad);
            ctx.save_data("parameters", parameters);
            ctx.save_for_backward(inputs.ToList());
            // apply() runs this under no_grad: no activations are recorded.
            // in its own scope: the intermediates of this no-grad pass are released now, not at the end of the step
            var outputs = Scoped.Run(() => payload.Fn(inputs));
            if (outputs is null || outputs.Length == 0)
                throw new InvalidOperationException("The checkpointed function returned no tensors.");
            var result = new List<Tensor>(outputs.Length);
            foreach (var o in outputs)
            {
                if (o is null || o.IsInvalid)
                    throw new InvalidOperationException("The checkpointed function returned null or a disposed tensor.");
                result.Add(inputs.Any(i => ReferenceEquals(i, o)) ? o.clone() : o);
            }
            return result;
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, List<Tensor> gradOutputs)
        {
            var payload = (Payload)ctx.get_data("payload");
            var needsGrad = (bool[])ctx.get_data("needsGrad");
            var parameters = (Tensor[])ctx.get_data("parameters");
            var result = new List<Tensor> { null! };
            using (var scope = torch.NewDisposeScope())
            {
                var saved = ctx.get_saved_variables();
                var detached = new Tensor[saved.Count];
                for (int i = 0; i < saved.Count; i++)
                    detached[i] = needsGrad[i] ? saved[i].detach().requires_grad_(true) : saved[i].detach();
                var wrt = new List<Tensor>();
                for (int i = 0; i < detached.Length; i++) if (needsGrad[i]) wrt.Add(detached[i]);
                wrt.AddRange(parameters);
                IList<Tensor> grads;
                using (torch.enable_grad())
                {
                    var outputs = payload.Fn(detached);
                    if (outputs.Length != gradOutputs.Count)
                        throw new InvalidOperationException($"The checkpointed function returned {outputs.Length} tensors when recomputed but {gradOutputs.Count} in forward; it must be deterministic.");
                    var outs = new List<Tensor>();
                    var gouts = new List<Tensor>();
                    for (int i = 0; i < outputs.Length; i++)
                    {
                        var g = gradOutputs[i];
                        if (!outputs[i].requires_grad || g is null || g.IsInvalid) continue;
                        outs.Add(outputs[i]);
                        gouts.Add(g);
                    }
                    if (outs.Count == 0)
                        throw new InvalidOperationException("No recomputed output of the checkpointed function requires grad; check that its parameters were passed to GradientCheckpoint.Run.");
                    grads = torch.autograd.grad(outs, wrt, gouts, allow_unused: true);
                }
                int k = 0;
                for (int i = 0; i < detached.Length; i++)
                    result.Add(needsGrad[i] ? Valid(grads[k++]) : null!);
                // Parameter gradients are accumulated into .grad here (what the engine's AccumulateGrad would do) and
                // the engine gets none: handed back, they would stay referenced by this scope's caller until the end of
                // the step, a second copy of every checkpointed block's gradients.
                using (torch.no_grad())
                    for (int i = 0; i < parameters.Length; i++)
                    {
                        if (Valid(grads[k++]) is { } g) Accumulate(parameters[i], g);
                        result.Add(null!);
                    }
                // Input gradients are handed to the autograd engine after this method returns: keep them alive past this
                // scope. On CPU backward runs on the caller's thread, so they land in the caller's step scope; on CUDA the
                // engine calls this from its device thread, where no scope exists and they are left to the GC finaliser.
                foreach (var g in result) g?.MoveToOuterDisposeScope();
            }
            return result;
        }

        private static Tensor Valid(Tensor? t) => t is null || t.IsInvalid ? null! : t;

        private static void Accumulate(Tensor parameter, Tensor gradient)
        {
            using var existing = parameter.grad;
            if (existing is null || existing.IsInvalid) parameter.grad = gradient;
            else existing.add_(gradient, HeldScalars.One);
        }
    }
}
