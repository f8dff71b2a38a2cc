using DreamBooth.Training.Optim;

namespace DreamBooth.Tests.Training.Optim;

public class LrScheduleTests
{
    private static double M(LrScheduleKind kind, long step, long warmup = 0, long total = 100, double cosineCycles = 0.5,
        int restarts = 1, double lrEnd = 1e-7, double power = 1, double baseLr = 1e-4) =>
        LrSchedule.Multiplier(new LrScheduleOptions
        {
            Kind = kind, WarmupSteps = warmup, TrainingSteps = total, CosineCycles = cosineCycles,
            RestartCycles = restarts, LrEnd = lrEnd, Power = power,
        }, step, baseLr);

    [Fact]
    public void ValuesMatchDiffusersFormulas()
    {
        Assert.Equal(1.0, M(LrScheduleKind.Constant, 0, warmup: 10));
        Assert.Equal(1.0, M(LrScheduleKind.Constant, 500));
        Assert.Equal(0.0, M(LrScheduleKind.ConstantWithWarmup, 0, warmup: 10));
        Assert.Equal(0.5, M(LrScheduleKind.ConstantWithWarmup, 5, warmup: 10), 12);
        Assert.Equal(1.0, M(LrScheduleKind.ConstantWithWarmup, 10, warmup: 10));
        // linear, warmup 10, total 110: (110 - s) / 100 after warm-up.
        Assert.Equal(0.3, M(LrScheduleKind.Linear, 3, warmup: 10, total: 110), 12);
        Assert.Equal(1.0, M(LrScheduleKind.Linear, 10, warmup: 10, total: 110), 12);
        Assert.Equal(0.5, M(LrScheduleKind.Linear, 60, warmup: 10, total: 110), 12);
        Assert.Equal(0.0, M(LrScheduleKind.Linear, 110, warmup: 10, total: 110));
        Assert.Equal(0.0, M(LrScheduleKind.Linear, 300, warmup: 10, total: 110));
        // cosine, 0.5 cycles: 0.5 (1 + cos(π p)).
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI / 4)), M(LrScheduleKind.Cosine, 25), 12);
        Assert.Equal(0.5, M(LrScheduleKind.Cosine, 50), 12);
        Assert.Equal(0.0, M(LrScheduleKind.Cosine, 100), 12);
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI * 0.5)), M(LrScheduleKind.Cosine, 20, warmup: 10, total: 50, cosineCycles: 1), 12);
        // Cosine with 1.5 cycles goes back up after the trough, as diffusers' formula does.
        Assert.Equal(1.0, M(LrScheduleKind.Cosine, 200, total: 300, cosineCycles: 1.5 ), 12);
        // cosine_with_restarts, 2 cycles over 100 steps.
        Assert.Equal(0.5, M(LrScheduleKind.CosineWithRestarts, 25, restarts: 2), 12);
        Assert.Equal(1.0, M(LrScheduleKind.CosineWithRestarts, 50, restarts: 2), 12);
        Assert.Equal(0.5, M(LrScheduleKind.CosineWithRestarts, 75, restarts: 2), 12);
        Assert.Equal(0.0, M(LrScheduleKind.CosineWithRestarts, 100, restarts: 2));
        Assert.Equal(0.25, M(LrScheduleKind.CosineWithRestarts, 5, warmup: 20, restarts: 2), 12);
        // polynomial, base 1e-4, end 1e-7, power 2: ((1e-4 - 1e-7)·(1 - p)² + 1e-7) / 1e-4.
        Assert.Equal(((1e-4 - 1e-7) * 0.25 + 1e-7) / 1e-4, M(LrScheduleKind.Polynomial, 50, power: 2), 12);
        Assert.Equal(((1e-4 - 1e-7) * Math.Pow(0.75, 2) + 1e-7) / 1e-4, M(LrScheduleKind.Polynomial, 35, warmup: 20, total: 80, power: 2), 12);
        Assert.Equal(1e-3, M(LrScheduleKind.Polynomial, 150), 12);
        Assert.Equal(1e-3, M(LrScheduleKind.Polynomial, 100), 12);
        Assert.Equal(0.5, M(LrScheduleKind.Polynomial, 5, warmup: 10), 12);
    }

    [Fact]
    public void ValidateNamesTheProblem()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new LrScheduleOptions { Kind = LrScheduleKind.Linear }.Validate());
        Assert.Contains("TrainingSteps", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LrScheduleOptions { WarmupSteps = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new LrScheduleOptions { Kind = LrScheduleKind.Cosine, TrainingSteps = 10, CosineCycles = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new LrScheduleOptions { Kind = LrScheduleKind.CosineWithRestarts, TrainingSteps = 10, RestartCycles = 0 }.Validate());
        var pex = Assert.Throws<ArgumentOutOfRangeException>(() => M(LrScheduleKind.Polynomial, 1, baseLr: 1e-8));
        Assert.Contains("LrEnd", pex.Message);
        new LrScheduleOptions().Validate();
    }
}
