using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>Which training timesteps are drawn more (or less) often (diffusers' <c>--timestep_bias_strategy</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TimestepBiasStrategy>))]
public enum TimestepBiasStrategy
{
    /// <summary>Uniform timesteps (the default of every DreamBooth script).</summary>
    None,
    /// <summary>The lowest-noise <see cref="TimestepBias.Portion"/> of timesteps: fine detail, textures and colours.</summary>
    Earlier,
    /// <summary>The highest-noise portion: composition and layout.</summary>
    Later,
    /// <summary>The timesteps <see cref="TimestepBias.Begin"/> … <see cref="TimestepBias.End"/> (exclusive).</summary>
    Range,
}

/// <summary>
/// Biased timestep sampling, as in diffusers' SDXL training scripts (<c>generate_timestep_weights</c>): every timestep
/// has weight 1, the biased ones <see cref="Multiplier"/> (2 = drawn twice as often, 0 = never), and the batch's
/// timesteps are drawn from the normalised weights with replacement. Biasing towards <see cref="TimestepBiasStrategy.Earlier"/>
/// timesteps spends the steps where a subject's fine detail and colours are decided; min-SNR weighting does the opposite.
/// </summary>
public sealed record TimestepBias
{
    /// <summary>Which timesteps get <see cref="Multiplier"/>.</summary>
    public TimestepBiasStrategy Strategy { get; init; } = TimestepBiasStrategy.None;

    /// <summary>Weight of the biased timesteps relative to the others (≥ 0; 1 = no bias).</summary>
    public double Multiplier { get; init; } = 1.0;

    /// <summary>Fraction of the timesteps biased by <see cref="TimestepBiasStrategy.Earlier"/> / <see cref="TimestepBiasStrategy.Later"/>, in (0, 1].</summary>
    public double Portion { get; init; } = 0.25;

    /// <summary>First biased timestep of <see cref="TimestepBiasStrategy.Range"/>.</summary>
    public int Begin { get; init; }

    /// <summary>End (exclusive) of <see cref="TimestepBiasStrategy.Range"/>.</summary>
    public int End { get; init; } = 1000;

    /// <summary>True when sampling differs from uniform.</summary>
    [JsonIgnore]
    public bool IsActive => Strategy != TimestepBiasStrategy.None && Multiplier != 1.0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the option and the fix.</summary>
    public void Validate(int numTrainTimesteps = 1000)
    {
        if (Problem(numTrainTimesteps) is { } problem) throw new ArgumentException(problem, nameof(TimestepBias));
    }

    /// <summary>What is wrong with these settings (naming the field and the fix), or null.</summary>
    string? Problem(int numTrainTimesteps)
    {
        if (!double.IsFinite(Multiplier) || Multiplier < 0)
            return $"TimestepBias.Multiplier: must be a finite number ≥ 0 (2 = twice as often, 0 = never), got {Multiplier}";
        if (Strategy is TimestepBiasStrategy.Earlier or TimestepBiasStrategy.Later && !(Portion > 0 && Portion <= 1))
            return $"TimestepBias.Portion: must be in (0, 1] (0.25 = a quarter of the timesteps), got {Portion}";
        if (Strategy == TimestepBiasStrategy.Range && !(Begin >= 0 && End > Begin && End <= numTrainTimesteps))
            return $"TimestepBias.Begin/End: need 0 ≤ Begin < End ≤ {numTrainTimesteps} (the scheduler's num_train_timesteps), got {Begin}…{End}";
        if (IsActive && Multiplier == 0 && BiasedCount(numTrainTimesteps) == numTrainTimesteps)
            return "TimestepBias: a multiplier of 0 on every timestep leaves nothing to train on; lower Portion or raise Multiplier";
        return null;
    }

    int BiasedCount(int n) => Strategy switch
    {
        TimestepBiasStrategy.Earlier or TimestepBiasStrategy.Later => Math.Max(1, (int)(Portion * n)),
        TimestepBiasStrategy.Range => Math.Min(End, n) - Begin,
        _ => 0,
    };

    /// <summary>
    /// Parses <c>none</c>, <c>earlier[:MULTIPLIER[:PORTION]]</c>, <c>later[:MULTIPLIER[:PORTION]]</c> or
    /// <c>range:MULTIPLIER:BEGIN-END</c> (e.g. <c>earlier:2:0.25</c>, <c>range:0.5:0-200</c>); the multiplier defaults to
    /// 2 and the portion to 0.25. Throws <see cref="FormatException"/> naming what is wrong and the accepted forms.
    /// </summary>
    public static TimestepBias Parse(string text)
    {
        const string forms = "use none, earlier[:MULTIPLIER[:PORTION]], later[:MULTIPLIER[:PORTION]] or range:MULTIPLIER:BEGIN-END (e.g. earlier:2:0.25)";
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Trim().Split(':');
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        double Number(string s, string what) => double.TryParse(s, System.Globalization.NumberStyles.Float, inv, out var v) && double.IsFinite(v)
            ? v : throw new FormatException($"timestep bias '{text}': {what} '{s}' is not a number; {forms}.");
        if (!Enum.TryParse<TimestepBiasStrategy>(parts[0], ignoreCase: true, out var strategy) || int.TryParse(parts[0], out _))
            throw new FormatException($"timestep bias '{text}': unknown strategy '{parts[0]}'; {forms}.");
        var maxParts = strategy == TimestepBiasStrategy.None ? 1 : 3;
        if (parts.Length > maxParts || (strategy == TimestepBiasStrategy.Range && parts.Length != 3))
            throw new FormatException($"timestep bias '{text}': wrong number of ':' fields for {strategy.ToString().ToLowerInvariant()}; {forms}.");
        if (strategy == TimestepBiasStrategy.None) return new TimestepBias();
        var bias = new TimestepBias { Strategy = strategy, Multiplier = parts.Length > 1 ? Number(parts[1], "the multiplier") : 2.0 };
        if (strategy == TimestepBiasStrategy.Range)
        {
            var ends = parts[2].Split('-');
            if (ends.Length != 2 || !int.TryParse(ends[0], inv, out var begin) || !int.TryParse(ends[1], inv, out var end))
                throw new FormatException($"timestep bias '{text}': the range '{parts[2]}' must be BEGIN-END in whole timesteps (e.g. 0-200); {forms}.");
            bias = bias with { Begin = begin, End = end };
        }
        else if (parts.Length > 2) bias = bias with { Portion = Number(parts[2], "the portion") };
        return bias.Problem(1000) is { } problem ? throw new FormatException($"timestep bias '{text}': {problem}; {forms}.") : bias;
    }

    /// <summary>The form <see cref="Parse"/> reads ("earlier:2:0.25", "range:2:0-200", "none").</summary>
    public override string ToString() => Strategy switch
    {
        TimestepBiasStrategy.None => "none",
        TimestepBiasStrategy.Range => FormattableString.Invariant($"range:{Multiplier}:{Begin}-{End}"),
        _ => FormattableString.Invariant($"{Strategy.ToString().ToLowerInvariant()}:{Multiplier}:{Portion}"),
    };

    /// <summary>The normalised sampling weight of each of the <paramref name="numTrainTimesteps"/> timesteps.</summary>
    public double[] Weights(int numTrainTimesteps)
    {
        Validate(numTrainTimesteps);
        var w = Enumerable.Repeat(1.0, numTrainTimesteps).ToArray();
        int count = BiasedCount(numTrainTimesteps);
        int first = Strategy switch
        {
            TimestepBiasStrategy.Earlier => 0,
            TimestepBiasStrategy.Later => numTrainTimesteps - count,
            TimestepBiasStrategy.Range => Begin,
            _ => 0,
        };
        for (int i = first; i < first + count; i++) w[i] *= Multiplier;
        var sum = w.Sum();
        return w.Select(x => x / sum).ToArray();
    }

    /// <summary>
    /// Draws <paramref name="batch"/> training timesteps (int64, on the CPU) from <paramref name="generator"/>: uniform
    /// (<c>randint</c>, the same stream as an unbiased run) when inactive, else from <see cref="Weights"/>.
    /// </summary>
    public Tensor Sample(int numTrainTimesteps, long batch, Generator? generator)
    {
        if (!IsActive) return torch.randint(0, numTrainTimesteps, [batch], dtype: ScalarType.Int64, generator: generator);
        using var weights = torch.tensor(Weights(numTrainTimesteps), dtype: ScalarType.Float64);
        return torch.multinomial(weights, batch, replacement: true, generator: generator);
    }
}
