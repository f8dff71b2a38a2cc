using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>Gradient clipping by global L2 norm, as <c>torch.nn.utils.clip_grad_norm_</c>.</summary>
public static class GradClip
{
    /// <summary>
    /// Computes the L2 norm of all gradients together (each grad's norm in fp32, then the norm of those norms,
    /// like PyTorch) and, if finite, scales every grad in place by <c>min(1, maxNorm / (total + 1e-6))</c>.
    /// Returns the total norm before clipping; parameters without grad are ignored (0 if none has one).
    /// If the norm is inf or NaN the grads are left untouched and the non-finite norm is returned so the
    /// caller can skip the step (PyTorch would multiply the grads by 0 or NaN here).
    /// </summary>
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        if (!(maxNorm > 0) || double.IsInfinity(maxNorm))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "maxNorm (max_grad_norm) must be a finite number > 0; diffusers' default is 1.0.");
        return Norm(parameters, maxNorm);
    }

    /// <summary>The global L2 norm of the gradients, as <see cref="ClipGradNorm"/> computes it, without clipping (0 if no parameter has a grad).</summary>
    public static double TotalNorm(IEnumerable<Parameter> parameters) => Norm(parameters, null);

    static double Norm(IEnumerable<Parameter> parameters, double? maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0.0;
        var device = grads[0].device;
        var norms = new List<Tensor>(grads.Count);
        // No TorchSharp call here takes a Scalar: torch.linalg.vector_norm(x, 2) builds its `ord` Scalar inside and only
        // passes the handle on, so the garbage collector may finalize (free) that Scalar while libtorch still reads it —
        // seen once as "Unknown scalar type" from linalg_vector_norm in a parallel test run. Σx² then √ uses tensors only.
        foreach (var g in grads)
        {
            // one scope per gradient: the float32 copy of a bf16 gradient is released at once (all of them together
            // would be a float32 copy of every gradient, 3.4 GB for SD 1.5's UNet)
            using var inner = torch.NewDisposeScope();
            norms.Add(g.to(ScalarType.Float32).square().sum().to(device).MoveToOuterDisposeScope());
        }
        var total = torch.stack(norms).sum().sqrt();
        double totalNorm = total.cpu().item<float>();
        if (!double.IsFinite(totalNorm) || maxNorm is null) return totalNorm;
        double coef = maxNorm.Value / (totalNorm + 1e-6);
        if (coef >= 1.0) return totalNorm;
        // the Scalar is held by `using` until every multiply has returned
        using var scale = coef.ToScalar();
        foreach (var g in grads)
            g.mul_(scale);
        return totalNorm;
    }
}
