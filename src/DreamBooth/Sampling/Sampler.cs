namespace DreamBooth.Sampling;

/// <summary>The samplers users pick by name (AUTOMATIC1111 names in the docs, diffusers classes behind them).</summary>
public enum Sampler
{
    /// <summary>"DDIM" — DDIMScheduler (Song et al. 2021), η from <see cref="SamplerOptions.Eta"/>.</summary>
    Ddim,
    /// <summary>"DDPM" — DDPMScheduler ancestral sampling (Ho et al. 2020).</summary>
    Ddpm,
    /// <summary>"Euler" — EulerDiscreteScheduler (Karras et al. 2022, algorithm 2).</summary>
    Euler,
    /// <summary>"Euler a" — EulerAncestralDiscreteScheduler.</summary>
    EulerAncestral,
    /// <summary>"Heun" — HeunDiscreteScheduler (Karras et al. 2022, algorithm 1): two model evaluations per step.</summary>
    Heun,
    /// <summary>"LMS" — LMSDiscreteScheduler, linear multistep of order 4.</summary>
    Lms,
    /// <summary>"DPM++ 2M" — DPMSolverMultistepScheduler, dpmsolver++ order 2 (Lu et al. 2022).</summary>
    DpmPP2M,
    /// <summary>"DPM++ 2M Karras" — as <see cref="DpmPP2M"/> with Karras sigmas.</summary>
    DpmPP2MKarras,
    /// <summary>"DPM++ SDE Karras" — DPMSolverSDEScheduler with Karras sigmas (two evaluations per step).</summary>
    DpmPPSdeKarras,
    /// <summary>"PLMS" / "PNDM" — PNDMScheduler with skip_prk_steps (Liu et al. 2022).</summary>
    Pndm,
    /// <summary>"UniPC" — UniPCMultistepScheduler, bh2 (Zhao et al. 2023).</summary>
    UniPC,
}

/// <summary>Per-sampler knobs that are arguments of diffusers' <c>step</c> rather than config fields.</summary>
public sealed record SamplerOptions
{
    /// <summary>DDIM η: 0 = deterministic DDIM, 1 = DDPM-like variance.</summary>
    public double Eta { get; init; }
    /// <summary>DDIM: recompute ε from the clipped x₀ (diffusers <c>use_clipped_model_output</c>).</summary>
    public bool UseClippedModelOutput { get; init; }
    /// <summary>Euler "churn" (Karras et al. 2022 S_churn); 0 = plain Euler.</summary>
    public double SChurn { get; init; }
    public double STmin { get; init; }
    public double STmax { get; init; } = double.PositiveInfinity;
    /// <summary>Noise scale for Euler churn and DPM++ SDE.</summary>
    public double SNoise { get; init; } = 1.0;
    /// <summary>LMS order (diffusers step default 4).</summary>
    public int LmsOrder { get; init; } = 4;

    public static SamplerOptions Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the option and the fix.</summary>
    public void Validate()
    {
        if (!(Eta >= 0) || double.IsInfinity(Eta)) throw new ArgumentException($"SamplerOptions.Eta is {Eta}; use a value >= 0 (0 = deterministic DDIM, 1 = DDPM-like).");
        if (!(SChurn >= 0) || double.IsInfinity(SChurn)) throw new ArgumentException($"SamplerOptions.SChurn is {SChurn}; use a finite value >= 0.");
        if (!(SNoise >= 0)) throw new ArgumentException($"SamplerOptions.SNoise is {SNoise}; use a value >= 0 (1 = standard).");
        if (LmsOrder is < 1 or > 4) throw new ArgumentException($"SamplerOptions.LmsOrder is {LmsOrder}; use 1..4.");
        if (STmin > STmax) throw new ArgumentException("SamplerOptions.STmin must not exceed STmax.");
    }
}

/// <summary>
/// A configured sampler (schedule + algorithm). Holds no per-run state: every <see cref="Start"/> returns a fresh
/// <see cref="SamplingRun"/>, so one sampler serves any number of runs, concurrently if you like.
/// </summary>
public interface ISampler : IDisposable
{
    Sampler Kind { get; }
    SchedulerConfig Config { get; }
    SamplerOptions Options { get; }
    NoiseSchedule Schedule { get; }

    /// <summary>Model evaluations per step (2 for Heun and DPM++ SDE, whose timestep arrays are interleaved).</summary>
    int Order { get; }

    /// <summary>A text-to-image run of <paramref name="steps"/> steps (diffusers <c>set_timesteps(steps)</c>).</summary>
    SamplingRun Start(int steps);

    /// <summary>
    /// An image-to-image run: diffusers <c>get_timesteps(steps, strength)</c> — the run starts at
    /// <see cref="SamplingRun.BeginIndex"/> = (steps − min(⌊steps·strength⌋, steps))·order, and
    /// <see cref="SamplingRun.AddNoise(TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, int)"/> at that index gives the starting latents.
    /// </summary>
    SamplingRun StartImageToImage(int steps, double strength);
}

/// <summary>Name parsing and the single factory for <see cref="ISampler"/>s.</summary>
public static class SamplerFactory
{
    static readonly (string Name, Sampler Kind)[] Names =
    [
        ("DDIM", Sampler.Ddim), ("ddim", Sampler.Ddim), ("DDIMScheduler", Sampler.Ddim),
        ("DDPM", Sampler.Ddpm), ("ddpm", Sampler.Ddpm), ("DDPMScheduler", Sampler.Ddpm),
        ("Euler", Sampler.Euler), ("euler", Sampler.Euler), ("EulerDiscreteScheduler", Sampler.Euler),
        ("Euler a", Sampler.EulerAncestral), ("euler_ancestral", Sampler.EulerAncestral), ("euler_a", Sampler.EulerAncestral), ("EulerAncestralDiscreteScheduler", Sampler.EulerAncestral),
        ("Heun", Sampler.Heun), ("heun", Sampler.Heun), ("HeunDiscreteScheduler", Sampler.Heun),
        ("LMS", Sampler.Lms), ("lms", Sampler.Lms), ("LMSDiscreteScheduler", Sampler.Lms),
        ("DPM++ 2M", Sampler.DpmPP2M), ("dpmpp_2m", Sampler.DpmPP2M), ("DPMSolverMultistepScheduler", Sampler.DpmPP2M),
        ("DPM++ 2M Karras", Sampler.DpmPP2MKarras), ("dpmpp_2m_karras", Sampler.DpmPP2MKarras),
        ("DPM++ SDE Karras", Sampler.DpmPPSdeKarras), ("dpmpp_sde_karras", Sampler.DpmPPSdeKarras), ("DPMSolverSDEScheduler", Sampler.DpmPPSdeKarras),
        ("PLMS", Sampler.Pndm), ("PNDM", Sampler.Pndm), ("pndm", Sampler.Pndm), ("plms", Sampler.Pndm), ("PNDMScheduler", Sampler.Pndm),
        ("UniPC", Sampler.UniPC), ("unipc", Sampler.UniPC), ("UniPCMultistepScheduler", Sampler.UniPC),
    ];

    /// <summary>The names <see cref="Parse"/> accepts (A1111 display names first, then diffusers names).</summary>
    public static IReadOnlyList<string> ValidNames { get; } = Names.Select(n => n.Name).ToArray();

    /// <summary>The A1111-style display name of a sampler.</summary>
    public static string DisplayName(Sampler s) => s switch
    {
        Sampler.Ddim => "DDIM",
        Sampler.Ddpm => "DDPM",
        Sampler.Euler => "Euler",
        Sampler.EulerAncestral => "Euler a",
        Sampler.Heun => "Heun",
        Sampler.Lms => "LMS",
        Sampler.DpmPP2M => "DPM++ 2M",
        Sampler.DpmPP2MKarras => "DPM++ 2M Karras",
        Sampler.DpmPPSdeKarras => "DPM++ SDE Karras",
        Sampler.Pndm => "PLMS",
        Sampler.UniPC => "UniPC",
        _ => s.ToString(),
    };

    static string Normalize(string s) =>
        new string(s.Trim().ToLowerInvariant().Replace("++", "pp").Replace("scheduler", "").Where(char.IsLetterOrDigit).ToArray());

    /// <summary>Parses "Euler a", "euler_ancestral", "DPM++ 2M Karras", "DDIMScheduler"… (case, spaces, '_' and '-' ignored).</summary>
    public static bool TryParse(string? name, out Sampler sampler)
    {
        sampler = default;
        if (string.IsNullOrWhiteSpace(name)) return false;
        var key = Normalize(name);
        foreach (var (n, k) in Names)
            if (Normalize(n) == key) { sampler = k; return true; }
        foreach (var s in Enum.GetValues<Sampler>())
            if (Normalize(s.ToString()) == key) { sampler = s; return true; }
        return false;
    }

    /// <summary>Like <see cref="TryParse"/> but throws an <see cref="ArgumentException"/> listing the valid names.</summary>
    public static Sampler Parse(string? name)
    {
        if (TryParse(name, out var s)) return s;
        throw new ArgumentException(
            $"Unknown sampler '{name}'. Valid names: {string.Join(", ", Enum.GetValues<Sampler>().Select(DisplayName).Select(n => $"\"{n}\""))} " +
            $"(also accepted: {string.Join(", ", Names.Select(n => n.Name).Where(n => !Enum.GetValues<Sampler>().Select(DisplayName).Contains(n)))}).",
            nameof(name));
    }

    /// <summary>
    /// Creates <paramref name="sampler"/> on the noise schedule of <paramref name="config"/> (as diffusers'
    /// <c>Cls.from_config(config)</c>). The name fixes what the A1111 name implies (DPM++ 2M = dpmsolver++ order 2,
    /// "Karras" = Karras sigmas); every other field comes from the config.
    /// </summary>
    public static ISampler Create(Sampler sampler, SchedulerConfig config, SamplerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        options ??= SamplerOptions.Default;
        options.Validate();
        config.Validate();
        return sampler switch
        {
            Sampler.Ddim => new DdimSampler(config, options),
            Sampler.Ddpm => new DdpmSampler(config, options),
            Sampler.Euler => new EulerSampler(config, options),
            Sampler.EulerAncestral => new EulerAncestralSampler(config, options),
            Sampler.Heun => new HeunSampler(config, options),
            Sampler.Lms => new LmsSampler(config, options),
            Sampler.DpmPP2M => new DpmSolverMultistepSampler(Sampler.DpmPP2M,
                config with { AlgorithmType = DpmAlgorithmType.DpmSolverPlusPlus, SolverOrder = 2, UseKarrasSigmas = false }, options),
            Sampler.DpmPP2MKarras => new DpmSolverMultistepSampler(Sampler.DpmPP2MKarras,
                config with { AlgorithmType = DpmAlgorithmType.DpmSolverPlusPlus, SolverOrder = 2, UseKarrasSigmas = true }, options),
            Sampler.DpmPPSdeKarras => new DpmSolverSdeSampler(config with { UseKarrasSigmas = true }, options),
            Sampler.Pndm => new PndmSampler(config with { SkipPrkSteps = true }, options),
            Sampler.UniPC => new UniPCSampler(config, options),
            _ => throw new ArgumentOutOfRangeException(nameof(sampler), sampler, "unknown sampler"),
        };
    }

    /// <summary>Parses <paramref name="name"/> and creates the sampler.</summary>
    public static ISampler Create(string name, SchedulerConfig config, SamplerOptions? options = null) =>
        Create(Parse(name), config, options);

    /// <summary>
    /// The sampler a diffusers <c>_class_name</c> denotes, with every config field honoured as diffusers would
    /// (e.g. a DPMSolverMultistepScheduler config keeps its solver_order, algorithm_type and use_karras_sigmas).
    /// </summary>
    public static ISampler FromConfig(SchedulerConfig config, SamplerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        options ??= SamplerOptions.Default;
        options.Validate();
        config.Validate();
        return config.ClassName switch
        {
            "DDIMScheduler" => new DdimSampler(config, options),
            "DDPMScheduler" => new DdpmSampler(config, options),
            "EulerDiscreteScheduler" => new EulerSampler(config, options),
            "EulerAncestralDiscreteScheduler" => new EulerAncestralSampler(config, options),
            "HeunDiscreteScheduler" => new HeunSampler(config, options),
            "LMSDiscreteScheduler" => new LmsSampler(config, options),
            "DPMSolverMultistepScheduler" => new DpmSolverMultistepSampler(
                config.UseKarrasSigmas ? Sampler.DpmPP2MKarras : Sampler.DpmPP2M, config, options),
            "DPMSolverSDEScheduler" => new DpmSolverSdeSampler(config, options),
            "PNDMScheduler" => new PndmSampler(config, options),
            "UniPCMultistepScheduler" => new UniPCSampler(config, options),
            null => throw new ArgumentException("the scheduler config has no _class_name; pick a sampler by name with SamplerFactory.Create."),
            var other => throw new NotSupportedException(
                $"scheduler class '{other}' is not implemented. Supported: DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, " +
                "EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, DPMSolverMultistepScheduler, " +
                "DPMSolverSDEScheduler, PNDMScheduler, UniPCMultistepScheduler."),
        };
    }
}
