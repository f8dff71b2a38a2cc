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
