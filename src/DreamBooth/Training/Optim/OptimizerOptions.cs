namespace DreamBooth.Training.Optim;

/// <summary>Hyper-parameters of AdamW (Loshchilov &amp; Hutter 2019), defaults as torch.optim.AdamW.</summary>
public sealed record AdamWOptions
{
    /// <summary>Decay of the first moment (default 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Decay of the second moment (default 0.999).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Added to sqrt(v̂) in the denominator (default 1e-8).</summary>
    public double Eps { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay (default 1e-2, as torch.optim.AdamW and diffusers' adam_weight_decay).</summary>
    public double WeightDecay { get; init; } = 1e-2;
    /// <summary>
    /// Parameters stored in bf16/fp16 are updated in float32 and written back with stochastic rounding seeded from this
    /// (and the step and parameter index), so runs stay reproducible.
    /// </summary>
    public long RoundingSeed { get; init; } = 1;

    /// <summary>Throws naming the offending option and the fix.</summary>
    public void Validate()
    {
        if (!(Beta1 >= 0 && Beta1 < 1))
            throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "AdamWOptions.Beta1 must be in [0, 1); typical 0.9.");
        if (!(Beta2 >= 0 && Beta2 < 1))
            throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "AdamWOptions.Beta2 must be in [0, 1); typical 0.999.");
        if (!(Eps >= 0) || double.IsInfinity(Eps))
            throw new ArgumentOutOfRangeException(nameof(Eps), Eps, "AdamWOptions.Eps must be a finite number >= 0; typical 1e-8.");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "AdamWOptions.WeightDecay must be a finite number >= 0; typical 1e-2.");
    }
}

/// <summary>Quantisation settings of <see cref="AdamW8bit"/>, defaults as bitsandbytes' Adam8bit.</summary>
public sealed record Quantization8bitOptions
{
    /// <summary>Elements per block sharing one fp32 absmax scale (bitsandbytes: 2048).</summary>
    public int BlockSize { get; init; } = 2048;
    /// <summary>Parameters with fewer elements keep fp32 state (bitsandbytes' min_8bit_size: 4096).</summary>
    public long MinQuantizedElements { get; init; } = 4096;

    /// <summary>Throws naming the offending option and the fix.</summary>
    public void Validate()
    {
        if (BlockSize < 16 || BlockSize > (1 << 24))
            throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "Quantization8bitOptions.BlockSize must be in [16, 16777216]; bitsandbytes uses 2048.");
        if (MinQuantizedElements < 0)
            throw new ArgumentOutOfRangeException(nameof(MinQuantizedElements), MinQuantizedElements, "Quantization8bitOptions.MinQuantizedElements must be >= 0; bitsandbytes uses 4096.");
    }
}
