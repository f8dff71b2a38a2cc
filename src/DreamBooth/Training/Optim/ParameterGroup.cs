using static TorchSharp.torch;
using TorchSharp.Modules;

namespace DreamBooth.Training.Optim;

/// <summary>
/// A named set of parameters sharing one learning rate (e.g. "unet" and "text_encoder"), like a PyTorch
/// optimizer param group. <see cref="BaseLearningRate"/> is what an LR schedule multiplies;
/// <see cref="LearningRate"/> is what the next <c>Step()</c> uses.
/// </summary>
public sealed class ParameterGroup
{
    /// <summary>Creates a group. <paramref name="weightDecay"/> overrides the optimizer's default when set.</summary>
    public ParameterGroup(string name, IEnumerable<Parameter> parameters, double learningRate, double? weightDecay = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (string.IsNullOrWhiteSpace(name))
            throw new ArgumentException("ParameterGroup name must be a non-empty string (e.g. \"unet\").", nameof(name));
        if (!(learningRate >= 0) || double.IsInfinity(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate,
                $"ParameterGroup '{name}': learning rate must be a finite number >= 0 (typical: 1e-6 .. 1e-4).");
        if (weightDecay is { } wd && (!(wd >= 0) || double.IsInfinity(wd)))
            throw new ArgumentOutOfRangeException(nameof(weightDecay), wd,
                $"ParameterGroup '{name}': weight decay must be a finite number >= 0 (typical: 1e-2).");
        Name = name;
        Parameters = parameters.ToArray();
        if (Parameters.Count == 0)
            throw new ArgumentException($"ParameterGroup '{name}' has no parameters; pass the module's trainable parameters.", nameof(parameters));
        if (Parameters.Distinct(ReferenceEqualityComparer.Instance).Count() != Parameters.Count)
            throw new ArgumentException($"ParameterGroup '{name}' lists the same parameter twice.", nameof(parameters));
        BaseLearningRate = learningRate;
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>Group name, used in error messages.</summary>
    public string Name { get; }

    /// <summary>The parameters, in a fixed order (state-dict keys use the index).</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The learning rate the schedule multiplies.</summary>
    public double BaseLearningRate { get; }

    /// <summary>The learning rate the next step uses (= base × schedule multiplier).</summary>
    public double LearningRate { get; set; }

    /// <summary>Per-group weight decay; null uses the optimizer default.</summary>
    public double? WeightDecay { get; }
}

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

/// <summary>
/// What the trainer needs from an optimizer: param groups with their own learning rate, a step, zeroing
/// gradients, and a state dict of plain tensors (saved in a checkpoint, reloaded bit-identically).
/// </summary>
public interface ITrainingOptimizer : IDisposable
{
    /// <summary>The parameter groups, in construction order.</summary>
    IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>How many times <see cref="Step"/> has run (restored by <see cref="LoadStateDict"/>).</summary>
    long StepCount { get; }

    /// <summary>One update of every parameter that has a gradient; parameters whose grad is null are skipped.</summary>
    void Step();

    /// <summary>Sets every parameter's grad to null (PyTorch's zero_grad(set_to_none=True)).</summary>
    void ZeroGrad();

    /// <summary>Sets each group's learning rate to base × <paramref name="multiplier"/> (see <see cref="LrSchedule"/>).</summary>
    void SetLearningRateMultiplier(double multiplier);

    /// <summary>A copy of the state as named tensors (moments, step counters, group learning rates).</summary>
    Dictionary<string, Tensor> StateDict();

    /// <summary>Restores a state produced by <see cref="StateDict"/> for the same parameter layout; strict.</summary>
    void LoadStateDict(IReadOnlyDictionary<string, Tensor> state);

    /// <summary>Bytes held by optimizer state tensors (moments, scales, quantisation maps).</summary>
    long StateBytes { get; }
}
