namespace DreamBooth.Training.Optim;

/// <summary>The learning-rate schedules of diffusers' <c>get_scheduler</c> (diffusers/optimization.py).</summary>
public enum LrScheduleKind
{
    /// <summary>Multiplier 1 throughout.</summary>
    Constant,
    /// <summary>Linear warm-up from 0, then 1.</summary>
    ConstantWithWarmup,
    /// <summary>Linear warm-up, then linear decay to 0 at the last step.</summary>
    Linear,
    /// <summary>Linear warm-up, then cosine decay over <see cref="LrScheduleOptions.CosineCycles"/> waves (0.5: down to 0 once).</summary>
    Cosine,
    /// <summary>Linear warm-up, then <see cref="LrScheduleOptions.RestartCycles"/> cosine decays with hard restarts.</summary>
    CosineWithRestarts,
    /// <summary>Linear warm-up, then polynomial decay from the base lr to <see cref="LrScheduleOptions.LrEnd"/>.</summary>
    Polynomial,
}

/// <summary>LR schedule settings; field defaults follow diffusers' train_dreambooth.py / optimization.py.</summary>
public sealed record LrScheduleOptions
{
    /// <summary>Which schedule (diffusers' <c>--lr_scheduler</c>).</summary>
    public LrScheduleKind Kind { get; init; } = LrScheduleKind.Constant;
    /// <summary>Warm-up steps (<c>--lr_warmup_steps</c>).</summary>
    public long WarmupSteps { get; init; }
    /// <summary>Total optimizer steps (<c>--max_train_steps</c>); required by all kinds except the constant ones.</summary>
    public long TrainingSteps { get; init; }
    /// <summary>Waves of the cosine schedule (diffusers' get_cosine_schedule_with_warmup num_cycles, default 0.5).</summary>
    public double CosineCycles { get; init; } = 0.5;
    /// <summary>Hard restarts of cosine_with_restarts (<c>--lr_num_cycles</c>, default 1).</summary>
    public int RestartCycles { get; init; } = 1;
    /// <summary>Final learning rate of the polynomial schedule (diffusers default 1e-7).</summary>
    public double LrEnd { get; init; } = 1e-7;
    /// <summary>Power of the polynomial schedule (<c>--lr_power</c>, default 1).</summary>
    public double Power { get; init; } = 1.0;

    /// <summary>Throws naming the offending option and the fix.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind))
            throw new ArgumentOutOfRangeException(nameof(Kind), Kind, $"LrScheduleOptions.Kind must be one of {string.Join(", ", Enum.GetNames<LrScheduleKind>())}.");
        if (WarmupSteps < 0)
            throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "LrScheduleOptions.WarmupSteps must be >= 0.");
        bool needsTotal = Kind is not (LrScheduleKind.Constant or LrScheduleKind.ConstantWithWarmup);
        if (needsTotal && TrainingSteps <= 0)
            throw new ArgumentOutOfRangeException(nameof(TrainingSteps), TrainingSteps, $"LrScheduleOptions.TrainingSteps must be > 0 for the {Kind} schedule; set it to the number of optimizer steps.");
        if (TrainingSteps < 0)
            throw new ArgumentOutOfRangeException(nameof(TrainingSteps), TrainingSteps, "LrScheduleOptions.TrainingSteps must be >= 0.");
        if (!(CosineCycles > 0) || double.IsInfinity(CosineCycles))
            throw new ArgumentOutOfRangeException(nameof(CosineCycles), CosineCycles, "LrScheduleOptions.CosineCycles must be a finite number > 0; 0.5 decays from 1 to 0 once.");
        if (RestartCycles < 1)
            throw new ArgumentOutOfRangeException(nameof(RestartCycles), RestartCycles, "LrScheduleOptions.RestartCycles must be >= 1.");
        if (!(LrEnd >= 0) || double.IsInfinity(LrEnd))
            throw new ArgumentOutOfRangeException(nameof(LrEnd), LrEnd, "LrScheduleOptions.LrEnd must be a finite number >= 0; default 1e-7.");
        if (!(Power > 0) || double.IsInfinity(Power))
            throw new ArgumentOutOfRangeException(nameof(Power), Power, "LrScheduleOptions.Power must be a finite number > 0; 1 is linear.");
    }
}

/// <summary>
/// Learning-rate multipliers as pure functions of the optimizer step, with the formulas of diffusers'
/// optimization.py (the <c>lr_lambda</c> of each <c>get_*_schedule_with_warmup</c>). <c>step</c> is the number of
/// optimizer steps already taken (0 for the first update), exactly what LambdaLR passes after that many
/// <c>lr_scheduler.step()</c> calls, so resuming needs no scheduler state.
/// </summary>
public static class LrSchedule
{
    /// <summary>
    /// The factor applied to the base learning rate at <paramref name="step"/>. <paramref name="baseLearningRate"/>
    /// is used only by <see cref="LrScheduleKind.Polynomial"/> (diffusers' lr_init = optimizer default lr), which
    /// requires it to exceed <see cref="LrScheduleOptions.LrEnd"/>.
    /// </summary>
    public static double Multiplier(LrScheduleOptions options, long step, double baseLearningRate = double.NaN)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        double warmup = options.WarmupSteps;
        double total = options.TrainingSteps;
        double s = step;
        if (options.Kind == LrScheduleKind.Constant) return 1.0;
        if (s < warmup) return s / Math.Max(1.0, warmup);
        switch (options.Kind)
        {
            case LrScheduleKind.ConstantWithWarmup:
                return 1.0;
            case LrScheduleKind.Linear:
                return Math.Max(0.0, (total - s) / Math.Max(1.0, total - warmup));
            case LrScheduleKind.Cosine:
            {
                double progress = (s - warmup) / Math.Max(1.0, total - warmup);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * options.CosineCycles * 2.0 * progress)));
            }
            case LrScheduleKind.CosineWithRestarts:
            {
                double progress = (s - warmup) / Math.Max(1.0, total - warmup);
                if (progress >= 1.0) return 0.0;
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * ((options.RestartCycles * progress) % 1.0))));
            }
            case LrScheduleKind.Polynomial:
            {
                double lrInit = baseLearningRate;
                if (!(lrInit > options.LrEnd) || double.IsInfinity(lrInit))
                    throw new ArgumentOutOfRangeException(nameof(baseLearningRate), baseLearningRate,
                        $"The polynomial schedule needs the base learning rate ({baseLearningRate}) to be finite and greater than LrScheduleOptions.LrEnd ({options.LrEnd}).");
                if (s > total) return options.LrEnd / lrInit;
                double lrRange = lrInit - options.LrEnd;
                double decaySteps = total - warmup;
                double pctRemaining = 1 - (s - warmup) / decaySteps;
                double decay = lrRange * Math.Pow(pctRemaining, options.Power) + options.LrEnd;
                return decay / lrInit;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown LrScheduleKind.");
        }
    }

    /// <summary>Multiplier at <paramref name="step"/> applied to every group of <paramref name="optimizer"/>.</summary>
    public static void Apply(ITrainingOptimizer optimizer, LrScheduleOptions options, long step)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        optimizer.SetLearningRateMultiplier(Multiplier(options, step, optimizer.Groups[0].BaseLearningRate));
    }
}
