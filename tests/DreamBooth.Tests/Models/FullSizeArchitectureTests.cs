using DreamBooth.Loading;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Models;

/// <summary>
/// Full-size SD 1.5 / 2.1 components built from the published configs on the meta device (no memory):
/// every state-dict key and shape equals the reference listing, and parameter counts are exact.
/// </summary>
public class FullSizeArchitectureTests
{
    [Theory]
    [InlineData("sd15", "unet", 859_520_964L)]
    [InlineData("sd21", "unet", 865_910_724L)]
    [InlineData("sd15", "vae", 83_653_863L)]
    [InlineData("sd21", "vae", 83_653_863L)]
    [InlineData("sd15", "text_encoder", 123_060_480L)]
    [InlineData("sd21", "text_encoder", 340_387_840L)]
    public void KeysShapesAndParameterCountMatchReference(string model, string component, long expectedParams)
    {
        var dir = TestPaths.ParityPath("keys", model, component);
        using var module = Build(dir, component);
        var actual = StateDicts.Listing(module);
        Assert.All(actual, e => Assert.Equal(DeviceType.META, module.state_dict()[e.Name].device_type));
        var expected = File.ReadAllLines(Path.Combine(dir, "keys.tsv"))
            .Where(l => l.Length > 0)
            .Select(l => l.Split('\t'))
            .Select(f => (Name: f[0], Shape: f[1].Length == 0 ? Array.Empty<long>() : f[1].Split(',').Select(long.Parse).ToArray()))
            .ToList();
        var missing = expected.Select(e => e.Name).Except(actual.Select(a => a.Name)).ToList();
        var extra = actual.Select(a => a.Name).Except(expected.Select(e => e.Name)).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0,
            $"missing: {string.Join(", ", missing.Take(10))}; unexpected: {string.Join(", ", extra.Take(10))}");
        var shapes = actual.ToDictionary(a => a.Name, a => a.Shape);
        foreach (var e in expected)
            Assert.True(e.Shape.SequenceEqual(shapes[e.Name]), $"{e.Name}: [{string.Join(",", shapes[e.Name])}] != [{string.Join(",", e.Shape)}]");
        Assert.Equal(expectedParams, StateDicts.ParameterCount(module));
    }

    static torch.nn.Module Build(string dir, string component) => component switch
    {
        "unet" => new UNet2DConditionModel(ComponentLoader.ReadConfig<UNet2DConditionConfig>(dir).Config, ModelPlacement.Meta),
        "vae" => new AutoencoderKL(ComponentLoader.ReadConfig<AutoencoderKLConfig>(dir).Config, ModelPlacement.Meta),
        "text_encoder" => new ClipTextModel(ComponentLoader.ReadConfig<ClipTextConfig>(dir).Config, ModelPlacement.Meta),
        _ => throw new ArgumentException(component),
    };
}
