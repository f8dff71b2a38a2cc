using System.Globalization;
using System.Text.RegularExpressions;
using DreamBooth.Loading;
using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Parity;

/// <summary>
/// Runs one <c>shared/parity/schedulers/&lt;variant&gt;-&lt;spacing&gt;</c> folder (format in shared/parity/README.md)
/// through our samplers and compares every recorded output with the README's tolerances. The sampler is chosen from
/// <c>scheduler_config.json</c> (<c>_class_name</c> + fields); DDIM's η comes from the <c>step(..., eta=…)</c> call
/// written in case.md, else from a folder name like <c>ddim-eta0.5-…</c>, else 0.
/// </summary>
public static partial class SchedulerParity
{
    const double SigmaAtol = 1e-6, SigmaRtol = 1e-5;
    const double LoopAtol = 1e-5, LoopRtol = 1e-5;
    const double FloatTimestepAtol = 1e-4;

    [GeneratedRegex(@"step\([^)]*\beta\s*=\s*([0-9.eE+\-]+)")]
    private static partial Regex CaseEtaRegex();

    [GeneratedRegex(@"eta([0-9]+(?:\.[0-9]+)?)")]
    private static partial Regex FolderEtaRegex();

    /// <summary>Compares one scheduler fixture folder; never throws for a bad fixture (the report carries the error).</summary>
    public static ParityReport Run(string folder)
    {
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(folder));
        var comps = new List<ParityComparison>();
        string kind = "scheduler";
        try
        {
            var cfg = SchedulerConfig.Load(Path.Combine(folder, "scheduler_config.json"));
            kind = $"scheduler:{cfg.ClassName}";
            var options = new SamplerOptions { Eta = FindEta(folder) };
            var inputs = Safetensors.Load(Path.Combine(folder, "inputs.safetensors"));
            var outputs = Safetensors.Load(Path.Combine(folder, "outputs.safetensors"));
            try
            {
                using var sampler = SamplerFactory.FromConfig(cfg, options);
                CompareSchedules(sampler, inputs, outputs, comps);
                CompareAddNoise(sampler, inputs, outputs, comps);
                CompareTraining(sampler, inputs, outputs, comps);
                CompareLoop(sampler, inputs, outputs, comps);
            }
            finally
            {
                foreach (var t in inputs.Values) t.Dispose();
                foreach (var t in outputs.Values) t.Dispose();
            }
            return new ParityReport(name, kind, comps);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return new ParityReport(name, kind, comps, $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>DDIM η: from case.md's recorded call, else the folder name, else 0.</summary>
    public static double FindEta(string folder)
    {
        var caseMd = Path.Combine(folder, "case.md");
        if (File.Exists(caseMd))
        {
            var m = CaseEtaRegex().Match(File.ReadAllText(caseMd));
            if (m.Success && double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var e)) return e;
        }
        var f = FolderEtaRegex().Match(Path.GetFileName(Path.TrimEndingDirectorySeparator(folder)));
        if (f.Success && double.TryParse(f.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var e2)) return e2;
        return 0;
    }

    static void CompareSchedules(ISampler sampler, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> outputs, List<ParityComparison> comps)
    {
        foreach (var n in new[] { 10, 25 })
        {
            var p = $"n{n}/";
            if (!outputs.ContainsKey(p + "timesteps")) continue;
            using var scope = torch.NewDisposeScope();
            using var run = sampler.Start(n);
            comps.Add(CompareTimesteps(p + "timesteps", run.Timesteps, outputs[p + "timesteps"]));
            if (outputs.TryGetValue(p + "sigmas", out var sig))
            {
                if (run.Sigmas is null)
                    comps.Add(new ParityComparison(p + "sigmas", double.PositiveInfinity, SigmaAtol, SigmaRtol, false, "the reference has sigmas, our sampler has none"));
                else
                    comps.Add(TensorCompare.Compare(p + "sigmas", torch.tensor(run.Sigmas.ToArray()), sig, SigmaAtol, SigmaRtol));
            }
            if (outputs.TryGetValue(p + "init_noise_sigma", out var ins))
                comps.Add(TensorCompare.Compare(p + "init_noise_sigma", torch.tensor(run.InitNoiseSigma), ins, SigmaAtol, SigmaRtol));
            if (outputs.TryGetValue(p + "scale_model_input_first", out var smi))
                comps.Add(TensorCompare.Compare(p + "scale_model_input_first", run.ScaleModelInput(inputs["fixed_sample"], 0), smi, SigmaAtol, SigmaRtol));
        }
    }

    static ParityComparison CompareTimesteps(string name, IReadOnlyList<double> ours, Tensor expected)
    {
        using var scope = torch.NewDisposeScope();
        bool integer = !torch.is_floating_point(expected);
        var e = expected.to(ScalarType.Float64);
        if (e.numel() != ours.Count)
            return new ParityComparison(name, double.PositiveInfinity, 0, 0, false,
                $"{ours.Count} timesteps, reference has {e.numel()}: ours [{string.Join(", ", ours.Take(12))}…]");
        var c = TensorCompare.Compare(name, torch.tensor(ours.ToArray()), e, integer ? 0 : FloatTimestepAtol, 0);
        return c.Passed ? c : c with { Note = $"ours [{string.Join(", ", ours.Select(v => v.ToString("G7", CultureInfo.InvariantCulture)))}]" };
    }

    static void CompareAddNoise(ISampler sampler, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> outputs, List<ParityComparison> comps)
    {
        if (!outputs.TryGetValue("add_noise", out var expected)) return;
        using var scope = torch.NewDisposeScope();
        using var run = sampler.Start(10);
        var ts = inputs["add_noise_timesteps"].to(ScalarType.Float64).data<double>().ToArray();
        var actual = run.AddNoiseAtTimesteps(inputs["add_noise_original"], inputs["add_noise_noise"], ts);
        comps.Add(TensorCompare.Compare("add_noise", actual, expected, SigmaAtol, SigmaRtol));
    }

    static void CompareTraining(ISampler sampler, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> outputs, List<ParityComparison> comps)
    {
        using var scope = torch.NewDisposeScope();
        var sch = sampler.Schedule;
        if (outputs.TryGetValue("betas", out var betas))
            comps.Add(TensorCompare.Compare("betas", sch.Betas, betas, SigmaAtol, SigmaRtol));
        if (outputs.TryGetValue("alphas_cumprod", out var ac))
            comps.Add(TensorCompare.Compare("alphas_cumprod", sch.AlphasCumprod, ac, SigmaAtol, SigmaRtol));
        if (inputs.TryGetValue("train_timesteps", out var tt))
        {
            if (outputs.TryGetValue("train_add_noise", out var tan))
                comps.Add(TensorCompare.Compare("train_add_noise", sch.AddNoise(inputs["train_original"], inputs["train_noise"], tt), tan, SigmaAtol, SigmaRtol));
            if (outputs.TryGetValue("train_velocity", out var tv))
                comps.Add(TensorCompare.Compare("train_velocity", sch.GetVelocity(inputs["train_original"], inputs["train_noise"], tt), tv, SigmaAtol, SigmaRtol));
        }
    }

    /// <summary>Counts the draws made through it during one step and answers each with that step's recorded noise.</summary>
    sealed class StepNoise(Tensor? recorded) : INoiseSource
    {
        public int Draws { get; private set; }

        public Tensor Next(long[] shape, ScalarType dtype, Device device)
        {
            Draws++;
            if (recorded is null)
                return torch.zeros(shape, dtype: dtype, device: device);
            if (!recorded.shape.SequenceEqual(shape))
                throw new InvalidOperationException($"noise drawn with shape [{string.Join(",", shape)}], recorded noise is [{string.Join(",", recorded.shape)}]");
            return recorded.to(dtype, device).clone();
        }
    }

    static void CompareLoop(ISampler sampler, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> outputs, List<ParityComparison> comps)
    {
        if (!outputs.TryGetValue("loop/latents", out var expLatents)) return;
        using var scope = torch.NewDisposeScope();
        using var run = sampler.Start(10);
        if (outputs.TryGetValue("loop/timesteps", out var lt))
            comps.Add(CompareTimesteps("loop/timesteps", run.Timesteps, lt));
        inputs.TryGetValue("noise_bank", out var bank);
        var modelConst = inputs["model_const"];
        var latents = inputs["initial_latents"] * torch.tensor((float)run.InitNoiseSigma);
        if (outputs.TryGetValue("loop/latents_start", out var ls))
            comps.Add(TensorCompare.Compare("loop/latents_start", latents, ls, LoopAtol, LoopRtol));
        int steps = (int)Math.Min(run.Timesteps.Count, expLatents.shape[0]);
        var inputsSeen = new List<Tensor>();
        var latentsSeen = new List<Tensor>();
        var predSeen = new List<Tensor>();
        var drew = new List<long>();
        for (int i = 0; i < steps; i++)
        {
            var modelInput = run.ScaleModelInput(latents, i);
            var modelOutput = 0.1f * modelInput + 0.05f * modelConst;
            var noise = new StepNoise(bank is not null && i < bank.shape[0] ? bank[i] : null);
            var r = run.Step(modelOutput, i, latents, noise);
            latents = r.PrevSample;
            inputsSeen.Add(modelInput);
            latentsSeen.Add(latents);
            if (r.PredOriginalSample is not null) predSeen.Add(r.PredOriginalSample);
            drew.Add(noise.Draws > 0 ? 1 : 0);
        }
        if (run.Timesteps.Count != expLatents.shape[0])
            comps.Add(new ParityComparison("loop/length", double.PositiveInfinity, 0, 0, false,
                $"our loop has {run.Timesteps.Count} steps, the reference {expLatents.shape[0]}"));
        if (outputs.TryGetValue("loop/model_input", out var mi))
            comps.Add(TensorCompare.Compare("loop/model_input", torch.stack(inputsSeen), mi, LoopAtol, LoopRtol));
        comps.Add(TensorCompare.Compare("loop/latents", torch.stack(latentsSeen), expLatents, LoopAtol, LoopRtol));
        if (outputs.TryGetValue("loop/pred_original_sample", out var pos))
        {
            if (predSeen.Count != steps)
                comps.Add(new ParityComparison("loop/pred_original_sample", double.PositiveInfinity, LoopAtol, LoopRtol, false, "our sampler returned no pred_original_sample"));
            else
                comps.Add(TensorCompare.Compare("loop/pred_original_sample", torch.stack(predSeen), pos, LoopAtol, LoopRtol));
        }
        if (outputs.TryGetValue("loop/noise_used", out var nu))
            comps.Add(TensorCompare.Compare("loop/noise_used", torch.tensor(drew.ToArray()), nu, 0, 0));
    }
}
