using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

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
