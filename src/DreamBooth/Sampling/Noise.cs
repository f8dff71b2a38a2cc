using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// Where a stochastic sampler's fresh Gaussian noise comes from. Passing it in (rather than drawing from a global
/// generator) keeps every run reproducible and lets parity tests inject recorded noise (k-diffusion style).
/// </summary>
public interface INoiseSource
{
    /// <summary>A standard-normal tensor of exactly <paramref name="shape"/>, <paramref name="dtype"/>, on <paramref name="device"/>.</summary>
    Tensor Next(long[] shape, ScalarType dtype, Device device);
}

/// <summary>Noise from a seeded <c>torch.Generator</c> on the CPU (so the same seed gives the same noise on any device).</summary>
public sealed class GeneratorNoiseSource : INoiseSource, IDisposable
{
    readonly torch.Generator _generator;

    public GeneratorNoiseSource(long seed)
    {
        Seed = seed;
        _generator = new torch.Generator((ulong)seed, torch.CPU);
    }

    /// <summary>The seed this source was created with.</summary>
    public long Seed { get; }

    public Tensor Next(long[] shape, ScalarType dtype, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var t = torch.randn(shape, dtype: ScalarType.Float32, device: torch.CPU, generator: _generator);
        return t.to(dtype).to(device).MoveToOuterDisposeScope();
    }

    public void Dispose() => _generator.Dispose();
}

/// <summary>
/// Replays recorded noise tensors in order (for tests and parity runs). Throws when exhausted or when a draw's
/// shape does not match the recording, so a sampler that draws differently from the reference is caught.
/// </summary>
public sealed class RecordedNoiseSource : INoiseSource
{
    readonly IReadOnlyList<Tensor> _draws;

    /// <param name="draws">One tensor per expected draw (not owned; keep them alive while this source is used).</param>
    /// <param name="repeatLast">Return the last recording for any further draw instead of throwing (models a
    /// patched <c>randn_tensor</c> that answers every draw of one step with the same tensor).</param>
    public RecordedNoiseSource(IReadOnlyList<Tensor> draws, bool repeatLast = false)
    {
        _draws = draws ?? throw new ArgumentNullException(nameof(draws));
        RepeatLast = repeatLast;
    }

    /// <summary>A source that answers every draw with <paramref name="noise"/>.</summary>
    public static RecordedNoiseSource Constant(Tensor noise) => new([noise], repeatLast: true);

    public bool RepeatLast { get; }

    /// <summary>How many draws were made so far.</summary>
    public int Used { get; private set; }

    public Tensor Next(long[] shape, ScalarType dtype, Device device)
    {
        if (Used >= _draws.Count && !(RepeatLast && _draws.Count > 0))
            throw new InvalidOperationException($"recorded noise exhausted: draw {Used + 1} requested but only {_draws.Count} were recorded.");
        var src = _draws[Math.Min(Used, _draws.Count - 1)];
        if (!src.shape.SequenceEqual(shape))
            throw new InvalidOperationException($"recorded noise {Used} has shape [{string.Join(",", src.shape)}] but the sampler drew [{string.Join(",", shape)}].");
        Used++;
        return src.to(dtype).to(device).clone();
    }
}
