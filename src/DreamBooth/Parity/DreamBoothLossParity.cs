using DreamBooth.Loading;
using DreamBooth.Sampling;
using DreamBooth.Training;
using DreamBooth.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Parity;

/// <summary>
/// Runs a DreamBooth-loss fixture (inputs/outputs.safetensors + scheduler_config.&lt;prediction&gt;.json) through
/// <see cref="DreamBoothLoss"/> and backward: noisy input, prediction, target, losses, total and per-parameter gradient norms
/// and selected gradients. The UNet is the folder's <c>unet/</c> or the sibling <c>unet-sd1-tiny</c> fixture it names.
/// </summary>
public static class DreamBoothLossParity
{
    public static ParityReport Run(string folder)
    {
        var unetFolder = new[] { Path.Combine(folder, "unet"), Path.Combine(folder, "..", "unet-sd1-tiny") }
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "config.json")))
            ?? throw new ModelLoadException(folder, "no UNet for this loss fixture (expected unet/ inside or ../unet-sd1-tiny beside it)");
        using var scope = torch.NewDisposeScope();
        var inputs = Safetensors.Load(Path.Combine(folder, "inputs.safetensors"));
        var outputs = Safetensors.Load(Path.Combine(folder, "outputs.safetensors"));
        var latents = torch.cat([inputs["instance_latents"], inputs["class_latents"]], 0);
        int instanceCount = (int)inputs["instance_latents"].shape[0];
        var comparisons = new List<ParityComparison>();
        foreach (var configPath in Directory.GetFiles(folder, "scheduler_config.*.json").OrderBy(p => p, StringComparer.Ordinal))
        {
            var config = SchedulerConfig.Load(configPath);
            var p = Path.GetFileName(configPath)["scheduler_config.".Length..^".json".Length];
            using var unet = ComponentLoader.LoadUnet(unetFolder);
            unet.train();
            using var schedule = new NoiseSchedule(config);
            var r = DreamBoothLoss.Compute(unet, schedule, latents, inputs["noise"], inputs["timesteps"], inputs["encoder_hidden_states"], instanceCount, 1.0);
            r.Loss.backward();
            var computed = new Dictionary<string, (Tensor T, double Atol, double Rtol)>(StringComparer.Ordinal)
            {
                ["noisy_model_input"] = (r.NoisyInput, 1e-6, 1e-5),
                [$"{p}/model_pred"] = (r.ModelPred, 1e-4, 1e-4),
                [$"{p}/target"] = (r.Target, 1e-6, 1e-5),
                [$"{p}/instance_loss"] = (r.InstanceLoss, 1e-6, 1e-5),
                [$"{p}/prior_loss"] = (r.PriorLoss!, 1e-6, 1e-5),
                [$"{p}/loss"] = (r.Loss, 1e-6, 1e-5),
            };
            var named = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter);
            double total = Math.Sqrt(named.Values.Sum(x => x.grad is null ? 0 : x.grad.to(ScalarType.Float64).pow(2).sum().item<double>()));
            computed[$"{p}/grad_norm"] = (torch.tensor(total), 1e-6, 1e-4);
            foreach (var (name, param) in named)
            {
                computed[$"{p}/grad_norm_per_param/{name}"] = (param.grad!.norm(), 1e-6, 1e-4);
                computed[$"{p}/grad/{name}"] = (param.grad!, 1e-6, 1e-4);
            }
            foreach (var (name, expected) in outputs.Where(o => o.Key.StartsWith(p + "/", StringComparison.Ordinal) || o.Key == "noisy_model_input").OrderBy(o => o.Key, StringComparer.Ordinal))
            {
                if (name == "noisy_model_input" && comparisons.Any(c => c.Name == name)) continue;
                comparisons.Add(computed.TryGetValue(name, out var c)
                    ? TensorCompare.Compare(name, c.T, expected, c.Atol, c.Rtol)
                    : new ParityComparison(name, double.PositiveInfinity, 0, 0, false, "output not produced by this runner"));
            }
        }
        if (comparisons.Count == 0)
            throw new ModelLoadException(folder, "no scheduler_config.<prediction>.json files: nothing to compare");
        return new ParityReport(folder, "DreamBoothLoss", comparisons);
    }
}
