using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Pipelines;

/// <summary>
/// Noise for a batch where each image has its own seeded CPU generator: image i gets the same draws whatever the batch
/// size or its position in the batch, and the same on every device (noise is drawn on the CPU in float32, then moved).
/// </summary>
public sealed class PerImageNoise : INoiseSource, IDisposable
{
    private readonly Generator[] generators;

    public PerImageNoise(IReadOnlyList<long> seeds)
    {
        generators = seeds.Select(s => new Generator((ulong)s, torch.CPU)).ToArray();
    }

    public int Count => generators.Length;

    public Tensor Next(long[] shape, ScalarType dtype, Device device)
    {
        if (shape.Length == 0 || shape[0] != generators.Length)
            throw new ArgumentException($"noise for a batch of {generators.Length} was asked with shape [{string.Join(",", shape)}]");
        var one = shape.ToArray();
        one[0] = 1;
        using var scope = torch.NewDisposeScope();
        var parts = generators.Select(g => torch.randn(one, dtype: ScalarType.Float32, device: torch.CPU, generator: g)).ToList();
        return torch.cat(parts, 0).to(dtype).to(device).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var g in generators) g.Dispose();
    }
}
