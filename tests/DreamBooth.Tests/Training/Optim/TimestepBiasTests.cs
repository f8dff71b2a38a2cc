using System.Text.Json;
using DreamBooth.Training;
using DreamBooth.Training.Optim;
using TorchSharp;

namespace DreamBooth.Tests.Training.Optim;

public class TimestepBiasTests
{
    [Fact]
    public void WeightsFollowDiffusersGenerateTimestepWeights()
    {
        // earlier, multiplier 3, portion 0.25 of 1000: timesteps 0..249 weigh 3, the rest 1; normalised.
        var w = new TimestepBias { Strategy = TimestepBiasStrategy.Earlier, Multiplier = 3, Portion = 0.25 }.Weights(1000);
        double total = 250 * 3 + 750;
        Assert.Equal(3 / total, w[0], 12);
        Assert.Equal(3 / total, w[249], 12);
        Assert.Equal(1 / total, w[250], 12);
        Assert.Equal(1.0, w.Sum(), 9);
        var later = new TimestepBias { Strategy = TimestepBiasStrategy.Later, Multiplier = 0, Portion = 0.1 }.Weights(1000);
        Assert.All(later[900..], x => Assert.Equal(0, x));
        Assert.Equal(1 / 900.0, later[899], 12);
        var range = new TimestepBias { Strategy = TimestepBiasStrategy.Range, Multiplier = 2, Begin = 100, End = 200 }.Weights(1000);
        Assert.Equal(1 / 1100.0, range[99], 12);
        Assert.Equal(2 / 1100.0, range[100], 12);
        Assert.Equal(2 / 1100.0, range[199], 12);
        Assert.Equal(1 / 1100.0, range[200], 12);
        Assert.All(new TimestepBias().Weights(10), x => Assert.Equal(0.1, x, 12));
    }

    [Fact]
    public void SamplingFollowsTheWeights()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(7);
        var never = new TimestepBias { Strategy = TimestepBiasStrategy.Later, Multiplier = 0, Portion = 0.5 }.Sample(1000, 4000, gen).data<long>().ToArray();
        Assert.All(never, t => Assert.InRange(t, 0, 499));
        Assert.InRange(never.Average(), 230, 270);
        var earlier = new TimestepBias { Strategy = TimestepBiasStrategy.Earlier, Multiplier = 4, Portion = 0.25 }.Sample(1000, 20000, gen).data<long>().ToArray();
        // P(t < 250) = 4·250 / (4·250 + 750) = 4/7
        Assert.InRange(earlier.Count(t => t < 250) / 20000.0, 4 / 7.0 - 0.02, 4 / 7.0 + 0.02);
    }

    [Fact]
    public void InactiveBiasDrawsTheUniformStreamOfAnUnbiasedRun()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randint(0, 1000, [16], dtype: torch.ScalarType.Int64, generator: new torch.Generator(3)).data<long>().ToArray();
        var none = new TimestepBias().Sample(1000, 16, new torch.Generator(3)).data<long>().ToArray();
        var unit = new TimestepBias { Strategy = TimestepBiasStrategy.Earlier, Multiplier = 1 }.Sample(1000, 16, new torch.Generator(3)).data<long>().ToArray();
        Assert.Equal(a, none);
        Assert.Equal(a, unit);
    }

    [Theory]
    [InlineData("none", TimestepBiasStrategy.None, 1.0, 0.25, 0, 1000)]
    [InlineData("earlier", TimestepBiasStrategy.Earlier, 2.0, 0.25, 0, 1000)]
    [InlineData("Later:3", TimestepBiasStrategy.Later, 3.0, 0.25, 0, 1000)]
    [InlineData("earlier:0.5:0.4", TimestepBiasStrategy.Earlier, 0.5, 0.4, 0, 1000)]
    [InlineData("range:0:0-200", TimestepBiasStrategy.Range, 0.0, 0.25, 0, 200)]
    public void ParsesTheCliForms(string text, TimestepBiasStrategy strategy, double multiplier, double portion, int begin, int end)
    {
        var b = TimestepBias.Parse(text);
        Assert.Equal(new TimestepBias { Strategy = strategy, Multiplier = multiplier, Portion = portion, Begin = begin, End = end }, b);
        Assert.Equal(b, TimestepBias.Parse(b.ToString()));
    }

    [Theory]
    [InlineData("sooner", "unknown strategy 'sooner'")]
    [InlineData("2", "unknown strategy '2'")]
    [InlineData("earlier:x", "the multiplier 'x' is not a number")]
    [InlineData("earlier:2:1.5", "Portion: must be in (0, 1]")]
    [InlineData("earlier:-1", "Multiplier: must be a finite number ≥ 0")]
    [InlineData("range:2", "wrong number of ':' fields")]
    [InlineData("range:2:300-100", "Begin/End: need 0 ≤ Begin < End ≤ 1000")]
    [InlineData("range:2:a-b", "must be BEGIN-END in whole timesteps")]
    [InlineData("none:2", "wrong number of ':' fields")]
    [InlineData("earlier:0:1", "leaves nothing to train on")]
    public void BadFormsAreRefusedWithTheReason(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => TimestepBias.Parse(text));
        Assert.Contains(expected, e.Message);
        Assert.Contains("earlier:2:0.25", e.Message);
    }

    [Fact]
    public void TrainingOptionsValidateAndSaveTheBias()
    {
        var bad = new TrainingOptions { TimestepBias = new TimestepBias { Strategy = TimestepBiasStrategy.Range, Multiplier = 2, Begin = 500, End = 2000 } };
        var e = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.Contains("TimestepBias.Begin/End", e.Message);
        var o = new TrainingOptions { TimestepBias = TimestepBias.Parse("later:1.5:0.3") };
        o.Validate();
        var json = JsonSerializer.Serialize(o, DreamBoothSession.JsonOptions);
        Assert.Contains("\"timestep_bias\"", json);
        var back = JsonSerializer.Deserialize<TrainingOptions>(json, DreamBoothSession.JsonOptions)!;
        Assert.Equal(o.TimestepBias, back.TimestepBias);
        // A session written before the option existed loads with uniform timesteps.
        var old = JsonSerializer.Deserialize<TrainingOptions>("{\"unet_steps\": 5}", DreamBoothSession.JsonOptions)!;
        Assert.False(old.TimestepBias.IsActive);
    }
}
