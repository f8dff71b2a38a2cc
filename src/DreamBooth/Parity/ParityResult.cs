using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Parity;

/// <summary>One compared output: the max abs error and whether |a - e| ≤ atol + rtol·|e| held everywhere.</summary>
public sealed record ParityComparison(string Name, double MaxAbsError, double Atol, double Rtol, bool Passed, string? Note = null);

/// <summary>All comparisons of one fixture folder (or case file).</summary>
public sealed record ParityReport(string Fixture, string Kind, IReadOnlyList<ParityComparison> Comparisons, string? Error = null)
{
    public bool Passed => Error is null && Comparisons.Count > 0 && Comparisons.All(c => c.Passed);
    public double WorstError => Comparisons.Count == 0 ? double.NaN : Comparisons.Max(c => c.MaxAbsError);
}

public static class TensorCompare
{
    /// <summary>Compares in float64 on the CPU; shape mismatch or a NaN/inf mismatch fails with a note.</summary>
    public static ParityComparison Compare(string name, Tensor actual, Tensor expected, double atol, double rtol)
    {
        using var scope = torch.NewDisposeScope();
        if (!actual.shape.SequenceEqual(expected.shape))
        {
            // a scalar vs [1] is the same value
            if (actual.numel() != expected.numel() || actual.numel() != 1)
                return new ParityComparison(name, double.PositiveInfinity, atol, rtol, false,
                    $"shape [{string.Join(",", actual.shape)}] != expected [{string.Join(",", expected.shape)}]");
        }
        var a = actual.detach().cpu().to(ScalarType.Float64).reshape(expected.shape);
        var e = expected.detach().cpu().to(ScalarType.Float64);
        var diff = (a - e).abs();
        if (!a.isfinite().all().item<bool>() && !a.isfinite().eq(e.isfinite()).all().item<bool>())
            return new ParityComparison(name, double.PositiveInfinity, atol, rtol, false, "non-finite values where the reference is finite");
        double max = diff.numel() == 0 ? 0 : diff.nan_to_num(0).max().item<double>();
        bool ok = diff.le(e.abs() * rtol + atol).logical_or(a.eq(e)).all().item<bool>();
        return new ParityComparison(name, max, atol, rtol, ok);
    }
}
