using DreamBooth.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Training.Optim;

/// <summary>A tiny MLP regression problem built from explicit generators (no global RNG: tests run in parallel).</summary>
internal sealed class TinyMlp : IDisposable
{
    public readonly Parameter W1, B1, W2, B2;
    private readonly Tensor _teacherW;
    public readonly int In, Hidden, Out;

    public TinyMlp(int inDim, int hidden, int outDim, ulong seed)
    {
        In = inDim; Hidden = hidden; Out = outDim;
        var g = new Generator(seed);
        using var scope = torch.NewDisposeScope();
        W1 = new Parameter((torch.randn(new long[] { hidden, inDim }, generator: g) / Math.Sqrt(inDim)).DetachFromDisposeScope());
        B1 = new Parameter((torch.randn(new long[] { hidden }, generator: g) * 0.1).DetachFromDisposeScope());
        W2 = new Parameter((torch.randn(new long[] { outDim, hidden }, generator: g) / Math.Sqrt(hidden)).DetachFromDisposeScope());
        B2 = new Parameter((torch.randn(new long[] { outDim }, generator: g) * 0.1).DetachFromDisposeScope());
        _teacherW = (torch.randn(new long[] { outDim, inDim }, generator: new Generator(12345)) / Math.Sqrt(inDim)).DetachFromDisposeScope();
    }

    public Parameter[] All => new[] { W1, B1, W2, B2 };

    public Tensor Forward(Tensor x) =>
        torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(x, W1, B1)), W2, B2);

    /// <summary>Batch number <paramref name="step"/>: fixed by the step index, so interrupted and uninterrupted runs see the same data.</summary>
    public (Tensor X, Tensor Y) Batch(long step, int batch = 32)
    {
        var g = new Generator((ulong)(1000 + step));
        var x = torch.randn(new long[] { batch, In }, generator: g);
        var y = torch.tanh(torch.nn.functional.linear(x, _teacherW));
        return (x, y);
    }

    /// <summary>One forward/backward; returns the loss.</summary>
    public double LossAndBackward(long step)
    {
        var (x, y) = Batch(step);
        var loss = torch.nn.functional.mse_loss(Forward(x), y);
        loss.backward();
        return loss.item<float>();
    }

    public void CopyFrom(TinyMlp other)
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < All.Length; i++) All[i].copy_(other.All[i]);
    }

    public void Dispose()
    {
        foreach (var p in All) p.Dispose();
        _teacherW.Dispose();
    }
}

internal static class OptimTestHelpers
{
    /// <summary>Bit-for-bit equality: same shape, dtype and values (torch.equal).</summary>
    public static bool Same(this Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        using var scope = torch.NewDisposeScope();
        return a.eq(b).all().item<bool>();
    }

    /// <summary>Runs steps [from, to) with zero_grad / backward / step; returns losses.</summary>
    public static List<double> Train(TinyMlp model, ITrainingOptimizer opt, long from, long to, LrScheduleOptions? schedule = null)
    {
        var losses = new List<double>();
        for (long s = from; s < to; s++)
        {
            using var scope = torch.NewDisposeScope();
            if (schedule is not null) LrSchedule.Apply(opt, schedule, s);
            opt.ZeroGrad();
            losses.Add(model.LossAndBackward(s));
            opt.Step();
        }
        return losses;
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        return (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
    }

    public static double Norm(Tensor a)
    {
        using var scope = torch.NewDisposeScope();
        return a.to(ScalarType.Float64).norm().item<double>();
    }
}
