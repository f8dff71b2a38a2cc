namespace DreamBooth.Training.Optim;

/// <summary>
/// Counts optimiser steps discarded because their loss or gradient was not finite, as PyTorch's <c>GradScaler</c>
/// skips them: a lone NaN batch is dropped (no update), a run of more than <see cref="MaxInARow"/> means the weights
/// diverged and the caller stops. Why lone ones happen: <see cref="TrainingOptions.MaxNonFiniteStepsInARow"/>.
/// </summary>
public sealed class NonFiniteSteps(int maxInARow)
{
    public int MaxInARow { get; } = maxInARow >= 0 ? maxInARow : throw new ArgumentOutOfRangeException(nameof(maxInARow), maxInARow, "must be ≥ 0");

    /// <summary>Batches discarded so far.</summary>
    public int Discarded { get; private set; }

    /// <summary>Discarded batches since the last good step.</summary>
    public int InARow { get; private set; }

    /// <summary>Records a discarded batch; returns false when that makes too many in a row (stop training).</summary>
    public bool Discard()
    {
        Discarded++;
        return ++InARow <= MaxInARow;
    }

    /// <summary>Records a good step.</summary>
    public void Good() => InARow = 0;
}
